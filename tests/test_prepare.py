"""Dataset preparation against archives served from a local HTTP server (127.0.0.1 only).

The archives are built from ``make_tiny_dataset`` output and packed the way
the real downloads are (Caltech's tar.gz inside a zip, EuroSAT's
``EuroSAT_RGB`` folder); Google Drive and the Hugging Face mirror are
replaced by fakes at their seams.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clipprompt.data import build_splits, download, prepare
from clipprompt.data.catalog import CATALOG
from clipprompt.data.prepare import Fetch, Recipe, Source
from clipprompt.testing.tiny_datasets import make_tiny_dataset

CALTECH_SPLIT_ID = "drive-id-caltech-split"
EUROSAT_SPLIT_ID = "drive-id-eurosat-split"
CLASSNAMES_ID = "drive-id-classnames"


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes) with HTTP Range support; logs every request."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        files, log = self.server.files, self.server.log
        data = files.get(self.path)
        log.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match else 0
        if start >= len(data) and match:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.log = {}, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _zip_tree(folder: str, arcroot: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for dirpath, _, names in os.walk(folder):
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                zf.write(path, os.path.join(arcroot, os.path.relpath(path, folder)))
    return buf.getvalue()


def _targz_tree(folder: str, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=arcname)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def world(tmp_path, server, monkeypatch):
    """Real-style archives on the server, fake Drive, and recipes pointing at both."""
    httpd, base = server
    src = tmp_path / "src"
    caltech = make_tiny_dataset(src, "Caltech101")
    eurosat = make_tiny_dataset(src, "EuroSAT")
    # Caltech: caltech-101.zip holding caltech-101/101_ObjectCategories.tar.gz (nested archive).
    inner = _targz_tree(str(caltech / "101_ObjectCategories"), "101_ObjectCategories")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("caltech-101/101_ObjectCategories.tar.gz", inner)
        zf.writestr("caltech-101/show_annotation.m", b"% not needed\n")
        zf.writestr("__MACOSX/caltech-101/._101_ObjectCategories.tar.gz", b"junk")
    caltech_zip = buf.getvalue()
    # EuroSAT: Zenodo's EuroSAT_RGB.zip has EuroSAT_RGB/<class>/..., which must become 2750/.
    eurosat_zip = _zip_tree(str(eurosat / "2750"), "EuroSAT_RGB")
    httpd.files.update({"/caltech-101.zip": caltech_zip, "/EuroSAT_RGB.zip": eurosat_zip})

    drive = {
        CALTECH_SPLIT_ID: (caltech / "split_zhou_Caltech101.json").read_bytes(),
        EUROSAT_SPLIT_ID: (eurosat / "split_zhou_EuroSAT.json").read_bytes(),
        CLASSNAMES_ID: b"n00000000 face\n",
    }
    drive_calls: list[str] = []

    def fake_gdrive(file_id: str, dest: str) -> None:
        drive_calls.append(file_id)
        if file_id not in drive:
            raise prepare.SourceError("no such Drive file")
        with open(dest, "wb") as f:
            f.write(drive[file_id])

    monkeypatch.setattr(download, "gdrive_download", fake_gdrive)

    def split_fetch(name: str, drive_id: str) -> Fetch:
        split_file = CATALOG[name].split_file
        return Fetch(split_file, (Source("gdrive", drive_id),), provides=split_file, archive=False)

    recipes = {
        "Caltech101": Recipe("Caltech101", (
            Fetch("caltech-101.zip",
                  (Source("url", base + "/caltech-101.zip", size=len(caltech_zip),
                          sha256=_sha(caltech_zip)),),
                  provides="101_ObjectCategories", nested=("101_ObjectCategories.tar.gz",)),
            split_fetch("Caltech101", CALTECH_SPLIT_ID),
        ), num_classes=4),
        "EuroSAT": Recipe("EuroSAT", (
            Fetch("EuroSAT_RGB.zip",
                  (Source("url", base + "/moved-away/EuroSAT_RGB.zip"),  # 404: fallback
                   Source("url", base + "/EuroSAT_RGB.zip", sha256=_sha(eurosat_zip))),
                  provides="2750", renames=(("EuroSAT_RGB", "2750"),)),
            split_fetch("EuroSAT", EUROSAT_SPLIT_ID),
        ), num_classes=4),
        "ImageNet": Recipe("ImageNet", (
            Fetch("classnames.txt", (Source("gdrive", CLASSNAMES_ID),), provides="classnames.txt",
                  archive=False),
        ), manual=prepare.RECIPES["ImageNet"].manual, manual_paths=("images/train", "images/val"),
            num_classes=4),
    }
    return {
        "root": tmp_path / "data", "recipes": recipes, "log": httpd.log, "drive_calls": drive_calls,
        "src": src, "base": base, "files": httpd.files, "tmp": tmp_path,
    }


def _run(world, *args: str) -> int:
    return prepare.main([*args, "--root", str(world["root"])], recipes=world["recipes"])


def test_two_datasets_end_to_end_then_skipped(world, capsys):
    assert _run(world, "caltech101", "EuroSAT") == 0
    root = str(world["root"])
    for name in ("Caltech101", "EuroSAT"):
        ours = build_splits(name, root)
        theirs = build_splits(name, str(world["src"]))
        assert len(ours["classnames"]) == 4
        for key in ("train", "val", "test"):
            assert [os.path.relpath(r.impath, root) for r in ours[key]] == \
                   [os.path.relpath(r.impath, world["src"]) for r in theirs[key]]
        assert os.path.isfile(os.path.join(root, CATALOG[name].dataset_dir, prepare.MARKER))
    # Exact layout the readers expect, no leftovers from unpacking or downloading.
    assert sorted(os.listdir(world["root"] / "caltech-101")) == [
        ".prepared.json", "101_ObjectCategories", "show_annotation.m", "split_zhou_Caltech101.json"]
    assert sorted(os.listdir(world["root"] / "eurosat")) == [
        ".prepared.json", "2750", "split_zhou_EuroSAT.json"]
    # The split files came through the gdown seam; EuroSAT fell back after a 404.
    assert world["drive_calls"] == [CALTECH_SPLIT_ID, EUROSAT_SPLIT_ID]
    paths = [path for path, _ in world["log"]]
    assert paths == ["/caltech-101.zip", "/moved-away/EuroSAT_RGB.zip", "/EuroSAT_RGB.zip"]
    out = capsys.readouterr().out
    assert "HTTP 404" in out and "Caltech101: OK (4 classes" in out

    requests_before = len(world["log"])
    assert _run(world, "Caltech101", "eurosat") == 0
    out = capsys.readouterr().out
    assert out.count("already prepared") == 2
    assert len(world["log"]) == requests_before and len(world["drive_calls"]) == 2


def _caltech_fetch(world) -> Fetch:
    return world["recipes"]["Caltech101"].fetches[0]


def test_partial_download_is_resumed(world):
    fetch = _caltech_fetch(world)
    data = world["files"]["/caltech-101.zip"]
    downloads = world["tmp"] / "dl"
    downloads.mkdir()
    (downloads / "caltech-101.zip.part").write_bytes(data[: len(data) // 2])
    path = download.fetch_file(fetch, str(downloads))
    assert open(path, "rb").read() == data
    assert world["log"] == [("/caltech-101.zip", f"bytes={len(data) // 2}-")]
    assert not os.path.exists(path + ".part")


def test_partial_download_with_wrong_content_is_restarted(world, capsys):
    fetch = _caltech_fetch(world)
    data = world["files"]["/caltech-101.zip"]
    downloads = world["tmp"] / "dl"
    downloads.mkdir()
    (downloads / "caltech-101.zip.part").write_bytes(b"\0" * (len(data) // 2))
    path = download.fetch_file(fetch, str(downloads))
    assert open(path, "rb").read() == data
    assert world["log"] == [("/caltech-101.zip", f"bytes={len(data) // 2}-"),
                            ("/caltech-101.zip", None)]
    assert "sha256 mismatch; restarting" in capsys.readouterr().out


def test_partial_download_from_another_source_is_restarted(world, capsys):
    data = world["files"]["/caltech-101.zip"]
    dest = world["tmp"] / "caltech-101.zip"
    (world["tmp"] / "caltech-101.zip.part").write_bytes(data[:100])
    (world["tmp"] / "caltech-101.zip.part.url").write_text("https://elsewhere.example/x.zip\n")
    download.http_download(world["base"] + "/caltech-101.zip", str(dest))
    assert dest.read_bytes() == data and world["log"] == [("/caltech-101.zip", None)]
    assert not (world["tmp"] / "caltech-101.zip.part.url").exists()
    assert "came from another source; restarting" in capsys.readouterr().out


def test_server_without_range_support_restarts(world, monkeypatch):
    data = b"0123456789" * 100
    world["files"]["/plain.bin"] = data
    dest = world["tmp"] / "plain.bin"
    (world["tmp"] / "plain.bin.part").write_bytes(b"junk")
    monkeypatch.setattr(_Handler, "do_GET", _no_range_get)
    download.http_download(world["base"] + "/plain.bin", str(dest))
    assert dest.read_bytes() == data


def _no_range_get(self) -> None:
    data = self.server.files[self.path]
    self.send_response(200)
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)


def test_damaged_archive_is_not_kept(world, capsys):
    world["files"]["/caltech-101.zip"] = b"this is not a zip file at all" * 10
    recipe = world["recipes"]["Caltech101"]
    broken = Fetch("caltech-101.zip", (Source("url", world["base"] + "/caltech-101.zip"),),
                   provides="101_ObjectCategories")
    world["recipes"]["Caltech101"] = Recipe("Caltech101", (broken, *recipe.fetches[1:]),
                                            num_classes=4)
    assert _run(world, "caltech101") == 1
    out = capsys.readouterr().out
    assert "Caltech101: FAILED" in out and "neither a zip nor a tar" in out
    downloads = world["root"] / "caltech-101" / prepare.DOWNLOADS
    assert not any(p.name.startswith("caltech-101.zip") for p in downloads.iterdir())
    assert not (world["root"] / "caltech-101" / prepare.MARKER).exists()


def test_check_lists_deleted_and_corrupted_images(world, capsys):
    assert _run(world, "caltech101", "eurosat") == 0
    assert _run(world, "caltech101", "eurosat", "--check") == 0
    capsys.readouterr()
    test_split = build_splits("Caltech101", str(world["root"]))["test"]
    deleted = test_split[0].impath  # the first image: the readers' own check stops there
    corrupted = build_splits("EuroSAT", str(world["root"]))["train"][3].impath
    also_deleted = test_split[-1].impath
    os.remove(deleted)
    os.remove(also_deleted)
    with open(corrupted, "wb") as f:
        f.write(b"\xff\xd8 definitely not a jpeg")
    assert _run(world, "caltech101", "eurosat", "--check") == 1
    out = capsys.readouterr().out
    assert f"missing: {deleted}" in out and f"missing: {also_deleted}" in out
    assert f"unreadable: {corrupted}" in out
    assert "Caltech101: FAILED" in out and "EuroSAT: FAILED" in out
    assert "test: " in out and "Not ready: Caltech101, EuroSAT" in out
    assert len(world["log"]) == 3  # --check downloaded nothing


def test_manual_step_prints_instructions_and_continues(world, capsys):
    assert _run(world, "imagenet", "caltech101") == 1
    out = capsys.readouterr().out
    imagenet_dir = os.path.join(str(world["root"]), "imagenet")
    assert "ImageNet: MANUAL STEP NEEDED" in out
    assert os.path.join(imagenet_dir, "images", "train") in out and "image-net.org" in out
    assert os.path.isfile(os.path.join(imagenet_dir, "classnames.txt"))  # the automatic part
    assert "Caltech101: OK" in out and "Not ready: ImageNet" in out

    # Once the user has put the images in place, the same command finishes the job.
    shutil.rmtree(imagenet_dir)
    make_tiny_dataset(world["root"], "ImageNet")
    assert _run(world, "imagenet") == 0


def test_names_resolve_by_catalog_or_config_name():
    assert len(prepare.resolve_names(["all"])) == 15
    specs = prepare.resolve_names(["caltech101", "DTD", "oxford_pets", "EUROSAT", "eurosat"])
    names = [s.name for s in specs]
    assert names == ["Caltech101", "DescribableTextures", "OxfordPets", "EuroSAT"]
    with pytest.raises(prepare.DataConfigError, match="unknown dataset 'cifar'"):
        prepare.resolve_names(["cifar"])


def test_default_recipes_cover_every_dataset():
    assert set(prepare.RECIPES) == set(CATALOG)
    for name, recipe in prepare.RECIPES.items():
        spec = CATALOG[name]
        assert recipe.num_classes == spec.num_classes
        assert recipe.fetches and all(f.sources for f in recipe.fetches), name
        for fetch in recipe.fetches:
            assert all(s.kind in ("url", "gdrive", "mirror") for s in fetch.sources)
        if spec.split_file:  # CoOp's split file: its Drive id first, then from inside the mirror zip
            split = next(f for f in recipe.fetches if f.provides == spec.split_file)
            assert split.sources[0].kind == "gdrive" and split.sources[0].ref == spec.split_drive_id
            inside = split.sources[-1]
            assert inside.kind == "mirror" and inside.ref == spec.mirror.name
            assert inside.member == spec.split_file
    assert prepare.RECIPES["ImageNet"].manual_paths  # licence: always a manual step


def test_gdown_seam_calls_gdown_with_the_drive_id(tmp_path, monkeypatch):
    gdown = pytest.importorskip("gdown")
    seen = {}

    def fake_download(*, id, output, quiet, resume):  # noqa: A002 (gdown's keyword)
        seen.update(id=id, resume=resume)
        with open(output, "w") as f:
            f.write("{}")
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    dest = tmp_path / "split.json"
    download.gdrive_download("abc123", str(dest))
    assert seen == {"id": "abc123", "resume": True} and dest.read_text() == "{}"


MIRRORED = [name for name, spec in CATALOG.items() if spec.mirror]


def test_every_mirrored_dataset_downloads_from_the_mirror_layout(tmp_path, server, monkeypatch, capsys):
    """Official URLs gone, Drive refusing: every mirrored dataset comes from the mirror alone.

    The local server serves the mirror's real file names at its real path
    (`<HF_ENDPOINT>/zhengli97/prompt_learning_dataset/resolve/main/<name>`, e.g. food101.zip);
    each zip holds the dataset folder with its split file inside (none beside the zips), as the
    mirror publishes them.
    """
    import dataclasses

    httpd, base = server
    monkeypatch.setenv("HF_ENDPOINT", base)
    monkeypatch.setattr(download, "gdrive_download",
                        lambda file_id, dest: (_ for _ in ()).throw(download.SourceError("quota")))
    src = tmp_path / "src"
    recipes = {}
    for name in MIRRORED:
        spec = CATALOG[name]
        folder = make_tiny_dataset(src, name)
        if spec.test_only:  # the mirror's variant folders carry ImageNet's classnames.txt
            shutil.copy(src / "imagenet" / "classnames.txt", folder / "classnames.txt")
        httpd.files[f"/zhengli97/prompt_learning_dataset/resolve/main/{spec.mirror.name}"] = \
            _zip_tree(str(folder), spec.dataset_dir)
        recipe = prepare.RECIPES[name]
        fetches = tuple(dataclasses.replace(f, sources=tuple(
            dataclasses.replace(s, ref=base + "/official-link-gone") if s.kind == "url"
            else dataclasses.replace(s, size=None, sha256=None)  # tiny zips, not the real bytes
            for s in f.sources)) for f in recipe.fetches)
        recipes[name] = dataclasses.replace(recipe, fetches=fetches, num_classes=None)
    assert "Food101" in recipes and len(recipes) == 14

    root = tmp_path / "data"
    assert prepare.main([*(CATALOG[n].config for n in MIRRORED), "--root", str(root)], recipes=recipes) == 0
    out = capsys.readouterr().out
    for name in MIRRORED:
        spec = CATALOG[name]
        assert f"{name}: OK" in out
        ours = build_splits(name, str(root))
        assert len(ours["test"]) == len(build_splits(name, str(src))["test"]) > 0
        if spec.split_file:  # taken from inside the zip (the Drive refused)
            assert (root / spec.dataset_dir / spec.split_file).is_file()
    requested = {path for path, _ in httpd.log}
    assert "/zhengli97/prompt_learning_dataset/resolve/main/food101.zip" in requested
    assert not any(path.endswith(".json") for path in requested)  # no split file beside the zips


def test_split_file_from_inside_the_mirror_zip(world, monkeypatch):
    """Images from the official archive, split file neither on Drive nor beside the zip."""
    monkeypatch.setenv("HF_ENDPOINT", world["base"])
    caltech = world["src"] / "caltech-101"
    world["files"]["/zhengli97/prompt_learning_dataset/resolve/main/caltech-101.zip"] = \
        _zip_tree(str(caltech), "caltech-101")
    fetch = prepare.RECIPES["Caltech101"].fetches[1]
    assert fetch.sources[0].kind == "gdrive"
    path = download.fetch_file(fetch, str(world["tmp"] / "dl"))  # the fake Drive has no such id
    assert open(path, "rb").read() == (caltech / "split_zhou_Caltech101.json").read_bytes()
    assert os.listdir(world["tmp"] / "dl") == ["split_zhou_Caltech101.json"]  # the zip is not kept


def test_dry_run_prints_every_file_and_url_in_order(tmp_path, capsys):
    assert prepare.main(["food101", "imagenet_a", "--root", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # nothing written
    food = out.split("Food101:")[1].split("ImageNetA:")[0]
    lines = [line.strip() for line in food.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]
    assert lines[0] == "1. https://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"
    assert lines[1].startswith("2. https://huggingface.co/zhengli97/prompt_learning_dataset/resolve/main/"
                               "food101.zip (5,005,224,796 bytes, sha256 b9f59577fcc4")
    assert lines[2] == "1. https://drive.google.com/file/d/1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl/view"
    assert lines[3].startswith("2. split_zhou_Food101.json from inside https://huggingface.co/"
                               "zhengli97/prompt_learning_dataset/resolve/main/food101.zip")
    assert "imagenet-adversarial.zip (684,370,441 bytes" in out


def test_published_size_and_checksum_are_checked(world, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", world["base"])
    world["files"]["/zhengli97/prompt_learning_dataset/resolve/main/dtd.zip"] = b"not the mirror's dtd.zip"
    fetch = prepare.RECIPES["DescribableTextures"].fetches[0]
    only_mirror = Fetch(fetch.filename, fetch.sources[-1:], provides=fetch.provides)
    with pytest.raises(prepare.PrepareError, match="size 24 != expected 626071992"):
        download.fetch_file(only_mirror, str(world["tmp"] / "dl"))


def test_unknown_dataset_is_one_line_exit_2(tmp_path, capsys):
    assert prepare.main(["cifar", "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown dataset 'cifar'")


def test_missing_dataset_error_names_the_prepare_command(tmp_path):
    from clipprompt.data import DatasetError

    with pytest.raises(DatasetError) as info:
        build_splits("Caltech101", str(tmp_path))
    message = str(info.value)
    assert f"python -m clipprompt.data.prepare caltech101 --root {tmp_path}`" in message
    assert message.count("clipprompt.data.prepare") == 1  # said once, with the root given


# ---- a partly extracted dataset, and a root that cannot hold datasets --------------------------

def test_a_partly_extracted_dataset_is_explained_and_force_repairs_it(world, capsys):
    assert _run(world, "caltech101") == 0
    images = world["root"] / "caltech-101" / "101_ObjectCategories"
    lost = sorted(images.rglob("*.jpg"))[:3]
    for path in lost:
        path.unlink()
    (world["root"] / "caltech-101" / prepare.MARKER).unlink()  # as an unpacking killed before the check
    keep = sorted(images.rglob("*.jpg"))[-1]
    keep.write_bytes(keep.read_bytes() + b"")  # untouched, but must not be replaced either
    mtime = keep.stat().st_mtime_ns
    capsys.readouterr()

    assert _run(world, "caltech101") == 1
    out = capsys.readouterr().out
    root = world["root"]
    assert (f"  3 listed images are missing (an interrupted download or unpacking?); repair with: "
            f"python -m clipprompt.data.prepare caltech101 --root {root} --force "
            "(downloads and unpacks its archives again, adding only the missing files)") in out

    assert _run(world, "caltech101", "--force") == 0
    out = capsys.readouterr().out
    assert "Caltech101: repairing 3 missing images: unpacking caltech-101.zip again" in out
    assert "Caltech101: OK (4 classes" in out and all(path.is_file() for path in lost)
    assert keep.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("make_root, says", [
    (lambda root: root.write_text("not a folder"), "is a file, not a folder"),
    (lambda root: None, "Permission denied"),
])
def test_a_root_that_cannot_hold_datasets_is_one_line_exit_2(world, capsys, monkeypatch, make_root, says):
    root = world["root"]
    make_root(root)
    if says == "Permission denied":  # tests run as root, which may write anywhere: the OS's answer, simulated
        def refuse(path, *a, **k):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(prepare.os, "makedirs", refuse)
    assert _run(world, "caltech101") == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in out + err
    assert err.startswith(f"error: --root {root} cannot hold the datasets") and says in err


# ---- class descriptions (CoPrompt's GPT-3 descriptions, from the authors' repository) ----------------

def _serve_descriptions(server, monkeypatch, data: bytes, *, pin: bool = True) -> str:
    """Serve ``data`` as Caltech101's file at the authors' raw.githubusercontent.com path; with ``pin``,
    its size and sha256 replace the published ones (the real file is never in this repository)."""
    import dataclasses

    from clipprompt.data import descriptions

    httpd, base = server
    monkeypatch.setattr(descriptions, "RAW_GITHUB", base)
    coprompt = descriptions.COPROMPT
    path = f"/ShuvenduRoy/CoPrompt/{coprompt.commit}/gpt_file/caltech_prompt.json"
    httpd.files[path] = data
    if pin:
        files = {**coprompt.files, "Caltech101": descriptions.PinnedFile("gpt_file/caltech_prompt.json", len(data), _sha(data))}
        monkeypatch.setitem(descriptions.DESCRIPTION_SETS, "coprompt", dataclasses.replace(coprompt, files=files))
    return path


DESCRIPTIONS_JSON = b'{"face": ["A face has two eyes.", "A face on a head."], "leopard": ["A spotted cat.", "A big cat."]}'


def test_descriptions_download_check_and_skip(tmp_path, server, monkeypatch, capsys):
    from clipprompt.data.descriptions import load_descriptions

    path = _serve_descriptions(server, monkeypatch, DESCRIPTIONS_JSON)
    root = tmp_path / "data"
    args = ["caltech101", "--root", str(root), "--descriptions", "coprompt"]
    assert prepare.main(args) == 0
    file = root / "caltech-101" / "descriptions_coprompt.json"
    assert file.read_bytes() == DESCRIPTIONS_JSON
    assert sorted(os.listdir(root / "caltech-101")) == ["descriptions_coprompt.json"]  # no images, no downloads left
    assert server[0].log == [(path, None)]
    assert f"Caltech101: coprompt descriptions OK ({file})" in capsys.readouterr().out
    assert prepare.main(args) == 0 and len(server[0].log) == 1  # in place: nothing downloaded again
    assert load_descriptions("Caltech101", str(root), "coprompt", ["leopard"]) == [["A spotted cat.", "A big cat."]]

    assert prepare.main([*args, "--check"]) == 0
    file.write_bytes(DESCRIPTIONS_JSON.replace(b"two", b"2  "))  # same size, other bytes
    capsys.readouterr()
    assert prepare.main([*args, "--check"]) == 1
    assert f"Caltech101: coprompt descriptions FAILED: {file}: sha256 mismatch" in capsys.readouterr().out
    assert prepare.main([*args, "--force"]) == 0 and file.read_bytes() == DESCRIPTIONS_JSON


def test_descriptions_download_is_resumed(tmp_path, server, monkeypatch):
    path = _serve_descriptions(server, monkeypatch, DESCRIPTIONS_JSON)
    downloads = tmp_path / "data" / "caltech-101" / download.DOWNLOADS
    downloads.mkdir(parents=True)
    (downloads / "descriptions_coprompt.json.part").write_bytes(DESCRIPTIONS_JSON[:40])
    assert prepare.main(["caltech101", "--root", str(tmp_path / "data"), "--descriptions", "coprompt"]) == 0
    assert server[0].log == [(path, "bytes=40-")]
    assert (tmp_path / "data" / "caltech-101" / "descriptions_coprompt.json").read_bytes() == DESCRIPTIONS_JSON


def test_a_corrupted_descriptions_file_is_refused_in_one_line(tmp_path, server, monkeypatch, capsys):
    """Against the published size and sha256 of the authors' file: the wrong bytes are not kept."""
    path = _serve_descriptions(server, monkeypatch, b'{"face": ["not the published file"]}', pin=False)
    root = tmp_path / "data"
    assert prepare.main(["caltech101", "--root", str(root), "--descriptions", "coprompt"]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert failed == [
        "Caltech101: FAILED: could not download descriptions_coprompt.json from any source: "
        f"{server[1]}{path} (421,183 bytes, sha256 e98b2b4809f0…): size 36 != expected 421183"
    ]
    assert "Not ready: Caltech101" in out
    assert os.listdir(root / "caltech-101") == []  # nothing kept


def test_descriptions_of_the_wrong_shape_are_refused(tmp_path, server, monkeypatch, capsys):
    _serve_descriptions(server, monkeypatch, b'{"face": "one sentence, not a list"}')
    root = tmp_path / "data"
    assert prepare.main(["caltech101", "--root", str(root), "--descriptions", "coprompt"]) == 1
    file = root / "caltech-101" / "descriptions_coprompt.json"
    assert (f"Caltech101: FAILED: {file}: expected a JSON object mapping each class name to a non-empty list of "
            "sentences; class 'face' has 'one sentence, not a list'") in capsys.readouterr().out
    assert not file.exists()


def test_descriptions_dry_run_prints_the_pinned_files(tmp_path, capsys):
    assert prepare.main(["caltech101", "imagenet_r", "--root", str(tmp_path), "--descriptions", "coprompt", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not any(tmp_path.iterdir())
    raw = "https://raw.githubusercontent.com/ShuvenduRoy/CoPrompt/a2a6c12e3622cfe4b3a127f4ba0c4f3eb841418c/gpt_file/"
    assert out.splitlines() == [
        f"Caltech101: {tmp_path / 'caltech-101' / 'descriptions_coprompt.json'}",
        f"    1. {raw}caltech_prompt.json (421,183 bytes, sha256 e98b2b4809f0…)",
        f"ImageNetR: {tmp_path / 'imagenet-rendition' / 'descriptions_coprompt.json'}",
        f"    1. {raw}imagenet_r_prompt.json",
    ]


def test_every_dataset_has_coprompt_descriptions():
    from clipprompt.data.descriptions import COPROMPT

    assert set(COPROMPT.files) == set(CATALOG)
    assert all(len(f.sha256) == 64 and f.size > 0 for name, f in COPROMPT.files.items() if not name.startswith("ImageNet"))
