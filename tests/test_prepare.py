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

from clipprompt.data import build_splits, prepare
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

    def no_hf(path: str, dest: str) -> None:
        raise AssertionError("the mirror must not be needed here")

    monkeypatch.setattr(prepare, "gdrive_download", fake_gdrive)
    monkeypatch.setattr(prepare, "hf_download", no_hf)

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
    path = prepare.fetch_file(fetch, str(downloads))
    assert open(path, "rb").read() == data
    assert world["log"] == [("/caltech-101.zip", f"bytes={len(data) // 2}-")]
    assert not os.path.exists(path + ".part")


def test_partial_download_with_wrong_content_is_restarted(world, capsys):
    fetch = _caltech_fetch(world)
    data = world["files"]["/caltech-101.zip"]
    downloads = world["tmp"] / "dl"
    downloads.mkdir()
    (downloads / "caltech-101.zip.part").write_bytes(b"\0" * (len(data) // 2))
    path = prepare.fetch_file(fetch, str(downloads))
    assert open(path, "rb").read() == data
    assert world["log"] == [("/caltech-101.zip", f"bytes={len(data) // 2}-"),
                            ("/caltech-101.zip", None)]
    assert "sha256 mismatch; restarting" in capsys.readouterr().out


def test_partial_download_from_another_source_is_restarted(world, capsys):
    data = world["files"]["/caltech-101.zip"]
    dest = world["tmp"] / "caltech-101.zip"
    (world["tmp"] / "caltech-101.zip.part").write_bytes(data[:100])
    (world["tmp"] / "caltech-101.zip.part.url").write_text("https://elsewhere.example/x.zip\n")
    prepare.http_download(world["base"] + "/caltech-101.zip", str(dest))
    assert dest.read_bytes() == data and world["log"] == [("/caltech-101.zip", None)]
    assert not (world["tmp"] / "caltech-101.zip.part.url").exists()
    assert "came from another source; restarting" in capsys.readouterr().out


def test_server_without_range_support_restarts(world, monkeypatch):
    data = b"0123456789" * 100
    world["files"]["/plain.bin"] = data
    dest = world["tmp"] / "plain.bin"
    (world["tmp"] / "plain.bin.part").write_bytes(b"junk")
    monkeypatch.setattr(_Handler, "do_GET", _no_range_get)
    prepare.http_download(world["base"] + "/plain.bin", str(dest))
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
    with pytest.raises(SystemExit, match="unknown dataset 'cifar'"):
        prepare.resolve_names(["cifar"])


def test_default_recipes_cover_every_dataset():
    assert set(prepare.RECIPES) == set(CATALOG)
    for name, recipe in prepare.RECIPES.items():
        spec = CATALOG[name]
        assert recipe.num_classes == spec.num_classes
        assert recipe.fetches and all(f.sources for f in recipe.fetches), name
        for fetch in recipe.fetches:
            assert all(s.kind in ("url", "gdrive", "hf") for s in fetch.sources)
        if spec.split_file:  # CoOp's split file: its Drive id first, the mirror as fallback
            split = next(f for f in recipe.fetches if f.provides == spec.split_file)
            assert split.sources[0].kind == "gdrive" and split.sources[0].ref in spec.split_source
            assert split.sources[-1].kind == "hf"
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
    prepare.gdrive_download("abc123", str(dest))
    assert seen == {"id": "abc123", "resume": True} and dest.read_text() == "{}"


def test_mirror_is_the_last_fallback(world, monkeypatch):
    """A dead official URL and a failing Drive id fall through to the Hugging Face seam."""
    got = []

    def fake_hf(path: str, dest: str) -> None:
        got.append(path)
        shutil.copy(world["src"] / "caltech-101" / "split_zhou_Caltech101.json", dest)

    monkeypatch.setattr(prepare, "hf_download", fake_hf)
    fetch = Fetch("split_zhou_Caltech101.json",
                  (Source("url", world["base"] + "/gone.json"), Source("gdrive", "unknown-id"),
                   Source("hf", "caltech-101/split_zhou_Caltech101.json")),
                  provides="split_zhou_Caltech101.json", archive=False)
    path = prepare.fetch_file(fetch, str(world["tmp"] / "dl"))
    assert got == ["caltech-101/split_zhou_Caltech101.json"] and os.path.isfile(path)


def test_hf_seam_without_huggingface_hub_is_a_source_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *args, **kwargs):
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(prepare.SourceError, match="pip install huggingface_hub"):
        prepare.hf_download("x.zip", str(tmp_path / "x.zip"))
