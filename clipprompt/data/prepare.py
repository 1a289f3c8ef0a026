"""Download, unpack and verify the 15 CoOp datasets in one command (Dassl-free).

Usage::

    python -m clipprompt.data.prepare caltech101 EuroSAT --root $DATA
    python -m clipprompt.data.prepare all --root $DATA
    python -m clipprompt.data.prepare all --root $DATA --check   # verify only, no download

Each dataset has a :class:`Recipe`: the files it needs, each with a list of
:class:`Source` fallbacks tried in order (an official URL, a Google Drive id
fetched with gdown, a file of the Hugging Face mirror), and small data-driven
post-unpack steps (nested archives, folder renames). Downloads go to
``<dataset_dir>/.downloads/`` through a ``.part`` file that is resumed with
an HTTP ``Range`` request, or restarted when the server cannot resume or the
result fails its size/sha256 check. A dataset that passed verification gets
a ``.prepared.json`` marker and is skipped next time.

Network access is confined to three seams that tests replace:
:func:`http_download` (plain HTTP(S)), :func:`gdrive_download` (gdown) and
:func:`hf_download` (``huggingface_hub``, imported lazily so it stays optional).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..fileio import atomic_write
from .build import dataset_paths, read_raw_splits
from .catalog import CATALOG, HF_MIRROR, DatasetSpec, Layout
from .errors import DatasetError
from .records import SPLITS, Record

HF_REPO_ID = HF_MIRROR.rsplit("huggingface.co/", 1)[1]
HF_REPO_TYPE = "model"  # the mirror's address has no /datasets/ prefix
MARKER = ".prepared.json"
DOWNLOADS = ".downloads"
STAGING = ".unpack"
CHUNK = 1 << 20


class SourceError(RuntimeError):
    """One source of one file failed; the next fallback is tried."""


class PrepareError(RuntimeError):
    """A dataset could not be prepared; the message says why and what to do."""


@dataclass(frozen=True)
class Source:
    """Where a file can be fetched from.

    ``kind`` is ``"url"`` (``ref`` is an HTTP(S) URL), ``"gdrive"`` (``ref``
    is a Google Drive file id) or ``"hf"`` (``ref`` is a path in the Hugging
    Face mirror). ``size``/``sha256`` are checked when known.
    """

    kind: str
    ref: str
    size: int | None = None
    sha256: str | None = None

    def describe(self) -> str:
        if self.kind == "gdrive":
            return f"https://drive.google.com/file/d/{self.ref}/view"
        if self.kind == "hf":
            return f"{HF_MIRROR}/blob/main/{self.ref}"
        return self.ref


@dataclass(frozen=True)
class Fetch:
    """One file a dataset needs.

    ``provides`` (relative to the dataset folder) is what must exist once the
    file is in place; if it already does, nothing is fetched. A plain file
    (``archive=False``) is stored at ``provides``; an archive is unpacked into
    a staging folder, ``nested`` inner archives found there are unpacked too,
    ``renames`` (old folder name -> new) are applied, and then the shallowest
    folder that contains ``provides`` is moved, with its siblings, into the
    dataset folder. ``also_ok`` lists alternative paths (relative to the
    dataset folder) that make this file unnecessary.
    """

    filename: str
    sources: tuple[Source, ...]
    provides: str
    archive: bool = True
    nested: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    also_ok: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    """How to obtain one dataset; ``manual`` is printed when ``manual_paths`` are missing."""

    name: str
    fetches: tuple[Fetch, ...] = ()
    manual: str = ""
    manual_paths: tuple[str, ...] = ()
    num_classes: int | None = None  # expected class count, checked by verify


# --------------------------------------------------------------------------- sources


def _gd(file_id: str) -> Source:
    return Source("gdrive", file_id)


def _hf(path: str) -> Source:
    return Source("hf", path)


def _url(url: str) -> Source:
    return Source("url", url)


def _split(spec_name: str, drive_id: str) -> Fetch:
    """CoOp's split file: Google Drive first, the mirror's copy second."""
    spec = CATALOG[spec_name]
    assert spec.split_file
    return Fetch(
        filename=spec.split_file,
        sources=(_gd(drive_id), _hf(f"{spec.dataset_dir}/{spec.split_file}")),
        provides=spec.split_file,
        archive=False,
    )


def _mirror(spec_name: str) -> Source:
    """The mirror's zip of a whole dataset folder (layout and split file included)."""
    return _hf(f"{CATALOG[spec_name].dataset_dir}.zip")


_CLASSNAMES_ID = "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF"
_VGG = "https://www.robots.ox.ac.uk/~vgg/data/"
_HENDRYCKS = "https://people.eecs.berkeley.edu/~hendrycks/"


def _variant_classnames() -> Fetch:
    return Fetch(
        filename="classnames.txt",
        sources=(_gd(_CLASSNAMES_ID),),
        provides="classnames.txt",
        archive=False,
        also_ok=("../imagenet/classnames.txt",),
    )


_IMAGENET_MANUAL = """\
ImageNet needs a manual step: its licence requires a free account at https://image-net.org.
  1. Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org.
  2. Training images: {dataset_dir}/images/train/<wnid>/*.JPEG
     (1000 folders n01440764, ...; the train archive holds one tar per class, extract each
     into its folder).
  3. Validation images: {dataset_dir}/images/val/<wnid>/*.JPEG
     (the 50,000 flat val images sorted into the same 1000 folders, e.g. with valprep.sh).
  classnames.txt is fetched automatically into {dataset_dir}/.
Then run this command again to verify."""

_SKETCH_MANUAL = """\
ImageNet-Sketch could not be downloaded automatically (no stable direct link).
  1. Download ImageNet-Sketch.zip as described at https://github.com/HaohanWang/ImageNet-Sketch
  2. Put its class folders (inside sketch/ in the zip) at {dataset_dir}/images/<wnid>/*.JPEG
     (1000 folders n01440764, ...).
Then run this command again to verify."""


def _default_recipes() -> dict[str, Recipe]:
    r: dict[str, Recipe] = {}

    def add(name: str, *fetches: Fetch, manual: str = "",
            manual_paths: tuple[str, ...] = ()) -> None:
        r[name] = Recipe(name, tuple(fetches), manual, manual_paths, CATALOG[name].num_classes)

    add(
        "ImageNet",
        _variant_classnames(),
        manual=_IMAGENET_MANUAL,
        manual_paths=("images/train", "images/val"),
    )
    add(
        "Caltech101",
        Fetch(
            "caltech-101.zip",
            (
                _url("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip"
                     "?download=1"),
                _mirror("Caltech101"),
            ),
            provides="101_ObjectCategories",
            nested=("101_ObjectCategories.tar.gz",),
        ),
        _split("Caltech101", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
    )
    add(
        "OxfordPets",
        Fetch(
            "images.tar.gz",
            (_url(_VGG + "pets/data/images.tar.gz"), _mirror("OxfordPets")),
            provides="images",
        ),
        _split("OxfordPets", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
    )
    add(
        "StanfordCars",
        # The official ai.stanford.edu links are dead; the mirror is the only known source.
        Fetch("stanford_cars.zip", (_mirror("StanfordCars"),), provides="cars_train"),
        _split("StanfordCars", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT"),
    )
    add(
        "OxfordFlowers",
        Fetch(
            "102flowers.tgz",
            (_url(_VGG + "flowers/102/102flowers.tgz"), _mirror("OxfordFlowers")),
            provides="jpg",
        ),
        _split("OxfordFlowers", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
    )
    add(
        "Food101",
        Fetch(
            "food-101.tar.gz",
            (_url("https://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"), _mirror("Food101")),
            provides="images",
        ),
        _split("Food101", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
    )
    add(
        "FGVCAircraft",
        Fetch(
            "fgvc-aircraft-2013b.tar.gz",
            (
                _url(_VGG + "fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"),
                _mirror("FGVCAircraft"),
            ),
            provides="variants.txt",  # moves data/ (images/, variants.txt, lists) up one level
        ),
    )
    add(
        "SUN397",
        Fetch(
            "SUN397.tar.gz",
            (_url("http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz"),
             _mirror("SUN397")),
            provides="SUN397",
        ),
        _split("SUN397", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
    )
    add(
        "DescribableTextures",
        Fetch(
            "dtd-r1.0.1.tar.gz",
            (_url(_VGG + "dtd/download/dtd-r1.0.1.tar.gz"), _mirror("DescribableTextures")),
            provides="images",
        ),
        _split("DescribableTextures", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
    )
    add(
        "EuroSAT",
        Fetch(
            "EuroSAT_RGB.zip",
            (
                _url("https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip?download=1"),
                _url("https://madm.dfki.de/files/sentinel/EuroSAT.zip"),
                _mirror("EuroSAT"),
            ),
            provides="2750",
            renames=(("EuroSAT_RGB", "2750"),),
        ),
        _split("EuroSAT", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
    )
    add(
        "UCF101",
        Fetch(
            "UCF-101-midframes.zip",
            (_gd("10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"), _mirror("UCF101")),
            provides="UCF-101-midframes",
        ),
        _split("UCF101", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y"),
    )
    add(
        "ImageNetV2",
        Fetch(
            "imagenetv2-matched-frequency.tar.gz",
            (
                _url("https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/"
                     "imagenetv2-matched-frequency.tar.gz"),
                _mirror("ImageNetV2"),
            ),
            provides="imagenetv2-matched-frequency-format-val",
        ),
        _variant_classnames(),
    )
    add(
        "ImageNetSketch",
        Fetch("imagenet-sketch.zip", (_mirror("ImageNetSketch"),), provides="images",
              renames=(("sketch", "images"),)),
        _variant_classnames(),
        manual=_SKETCH_MANUAL,
        manual_paths=("images",),
    )
    add(
        "ImageNetA",
        Fetch(
            "imagenet-a.tar",
            (_url(_HENDRYCKS + "imagenet-a.tar"), _mirror("ImageNetA")),
            provides="imagenet-a",
        ),
        _variant_classnames(),
    )
    add(
        "ImageNetR",
        Fetch(
            "imagenet-r.tar",
            (_url(_HENDRYCKS + "imagenet-r.tar"), _mirror("ImageNetR")),
            provides="imagenet-r",
        ),
        _variant_classnames(),
    )
    return r


RECIPES: dict[str, Recipe] = _default_recipes()


# --------------------------------------------------------------------------- seams


def _progress(total: int | None, initial: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=desc,
                leave=False, disable=None)


def http_download(url: str, dest: str, *, size: int | None = None, timeout: float = 60) -> None:
    """Download ``url`` to ``dest`` through ``dest + '.part'``, resuming a partial file.

    A ``.part`` left by an earlier run is continued with a ``Range`` request;
    if the server answers with the whole file instead, it is restarted.
    Raises :class:`SourceError` on HTTP/network errors.
    """
    part, origin = dest + ".part", dest + ".part.url"
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    if have and os.path.isfile(origin) and Path(origin).read_text().strip() != url:
        print(f"  {os.path.basename(part)} came from another source; restarting", flush=True)
        have = 0  # a prefix of a different file (e.g. an earlier fallback): never resume it
    if size is not None and have > size:
        have = 0  # longer than the file can be: not a prefix of it
    if size is not None and have == size:
        os.replace(part, dest)
        Path(origin).unlink(missing_ok=True)
        return
    request = urllib.request.Request(url, headers={"User-Agent": "clipprompt-prepare"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # range past the end: the part may be complete
            os.replace(part, dest)
            Path(origin).unlink(missing_ok=True)
            return
        raise SourceError(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(str(getattr(exc, "reason", exc))) from exc
    with response:
        resumed = have and response.status == 206 and (
            response.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        )
        if have and not resumed:
            print(f"  server cannot resume {os.path.basename(dest)}; restarting", flush=True)
            have = 0
        if not resumed:
            Path(origin).write_text(url + "\n")
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else size
        try:
            with open(part, "ab" if resumed else "wb") as out, _progress(
                total, have, os.path.basename(dest)
            ) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        except OSError as exc:  # connection dropped: keep the .part for the next run
            raise SourceError(f"interrupted ({exc}); run again to resume") from exc
    os.replace(part, dest)
    Path(origin).unlink(missing_ok=True)


def gdrive_download(file_id: str, dest: str) -> None:
    """The one place that calls gdown: fetch Google Drive file ``file_id`` to ``dest``."""
    try:
        import gdown
    except ImportError as exc:
        raise SourceError("gdown is not installed (pip install gdown)") from exc
    try:
        result = gdown.download(id=file_id, output=dest + ".part", quiet=False, resume=True)
    except Exception as exc:  # gdown raises many types (FileURLRetrievalError, HTTP errors)
        raise SourceError(f"gdown: {exc}") from exc
    if not result or not os.path.isfile(dest + ".part"):
        raise SourceError("gdown could not fetch the file (quota or permission?)")
    os.replace(dest + ".part", dest)


def hf_download(path: str, dest: str) -> None:
    """The one place that calls huggingface_hub: fetch ``path`` of the mirror to ``dest``."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise SourceError("huggingface_hub is not installed (pip install huggingface_hub)") from exc
    try:
        cached = hf_hub_download(HF_REPO_ID, path, repo_type=HF_REPO_TYPE,
                                 local_dir=os.path.dirname(dest) + "/.hf")
    except Exception as exc:  # network, 404 (EntryNotFoundError), auth
        raise SourceError(f"huggingface_hub: {exc}") from exc
    shutil.move(cached, dest)


# --------------------------------------------------------------------------- fetching


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path: str, source: Source) -> str | None:
    """Why ``path`` is not the file ``source`` describes, or None if it may be."""
    if source.size is not None and os.path.getsize(path) != source.size:
        return f"size {os.path.getsize(path)} != expected {source.size}"
    if source.sha256 is not None and _sha256(path) != source.sha256.lower():
        return "sha256 mismatch"
    return None


def _fetch_one(source: Source, dest: str) -> None:
    """Fetch ``dest`` from one source, retrying once from scratch if the result is wrong."""
    for attempt in (1, 2):
        if source.kind == "url":
            http_download(source.ref, dest, size=source.size)
        elif source.kind == "gdrive":
            gdrive_download(source.ref, dest)
        elif source.kind == "hf":
            hf_download(source.ref, dest)
        else:
            raise SourceError(f"unknown source kind {source.kind!r}")
        problem = _check_file(dest, source)
        if problem is None:
            return
        os.remove(dest)  # never keep a wrong file; a resumed .part is the usual culprit
        then = "restarting from scratch" if attempt == 1 else "giving up on this source"
        print(f"  {os.path.basename(dest)}: {problem}; {then}", flush=True)
    raise SourceError(problem)


def fetch_file(fetch: Fetch, downloads: str) -> str:
    """Get ``fetch.filename`` into ``downloads`` from the first source that works."""
    os.makedirs(downloads, exist_ok=True)
    dest = os.path.join(downloads, fetch.filename)
    if os.path.isfile(dest):  # complete (renamed from .part) but not yet unpacked
        if any(_check_file(dest, s) is None for s in fetch.sources):
            return dest
        os.remove(dest)
    errors = []
    for source in fetch.sources:
        print(f"  {fetch.filename} <- {source.describe()}", flush=True)
        try:
            _fetch_one(source, dest)
            return dest
        except SourceError as exc:
            print(f"    failed: {exc}", flush=True)
            errors.append(f"{source.describe()}: {exc}")
    raise PrepareError(f"could not download {fetch.filename} from any source:\n    "
                       + "\n    ".join(errors))


# --------------------------------------------------------------------------- unpacking


def _safe_members(tar: tarfile.TarFile, target: str):
    root = os.path.realpath(target)
    for member in tar.getmembers():
        path = os.path.realpath(os.path.join(target, member.name))
        if os.path.commonpath([root, path]) != root or member.issym() or member.islnk():
            continue  # no writing outside the target, no links
        yield member


def unpack(archive: str, target: str) -> None:
    """Extract a zip or (compressed) tar archive into ``target``; refuses unsafe paths."""
    os.makedirs(target, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                root = os.path.realpath(target)
                for info in zf.infolist():
                    path = os.path.realpath(os.path.join(target, info.filename))
                    if os.path.commonpath([root, path]) == root:
                        zf.extract(info, target)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = list(_safe_members(tf, target))
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: also sanitise modes
                    tf.extractall(target, members=members, filter="data")
                else:
                    tf.extractall(target, members=members)
        else:
            raise PrepareError(f"{archive} is neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise PrepareError(f"{archive} is damaged ({exc}); it was deleted, run again "
                           "to download it anew") from exc


def _walk_dirs(top: str) -> Iterable[str]:
    """Folders under ``top``, shallowest first (breadth-first), ``top`` included."""
    queue = deque([top])
    while queue:
        folder = queue.popleft()
        yield folder
        with os.scandir(folder) as entries:
            queue.extend(sorted(e.path for e in entries
                                if e.is_dir(follow_symlinks=False) and e.name != "__MACOSX"))


def place_archive(fetch: Fetch, archive: str, dataset_dir: str) -> None:
    """Unpack ``archive`` and move the folder holding ``fetch.provides`` into ``dataset_dir``."""
    staging = os.path.join(dataset_dir, STAGING)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        unpack(archive, staging)
        for inner in fetch.nested:  # e.g. Caltech's 101_ObjectCategories.tar.gz inside the zip
            for folder in list(_walk_dirs(staging)):
                candidate = os.path.join(folder, inner)
                if os.path.isfile(candidate):
                    unpack(candidate, folder)
                    os.remove(candidate)
                    break
        for old, new in fetch.renames:  # e.g. EuroSAT_RGB -> 2750
            for folder in list(_walk_dirs(staging)):
                if os.path.basename(folder) == old:
                    os.rename(folder, os.path.join(os.path.dirname(folder), new))
                    break
        holder = next((d for d in _walk_dirs(staging)
                       if os.path.exists(os.path.join(d, fetch.provides))), None)
        if holder is None:
            raise PrepareError(f"{os.path.basename(archive)} does not contain "
                               f"{fetch.provides!r}; is it the right archive?")
        for name in os.listdir(holder):
            dst = os.path.join(dataset_dir, name)
            if not os.path.exists(dst):
                shutil.move(os.path.join(holder, name), dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _exists_any(dataset_dir: str, fetch: Fetch) -> bool:
    return any(os.path.exists(os.path.normpath(os.path.join(dataset_dir, p)))
               for p in (fetch.provides, *fetch.also_ok))


def obtain(fetch: Fetch, dataset_dir: str) -> None:
    """Make ``fetch.provides`` exist in ``dataset_dir`` (download, unpack, place)."""
    if _exists_any(dataset_dir, fetch):
        return
    downloads = os.path.join(dataset_dir, DOWNLOADS)
    path = fetch_file(fetch, downloads)
    if not fetch.archive:
        shutil.move(path, os.path.join(dataset_dir, fetch.provides))
        return
    print(f"  unpacking {fetch.filename}", flush=True)
    try:
        place_archive(fetch, path, dataset_dir)
    except PrepareError:
        os.remove(path)  # a damaged or wrong archive is never kept
        raise
    os.remove(path)


# --------------------------------------------------------------------------- verification


@dataclass
class Report:
    """What verification found; ``problems`` empty means the dataset is usable."""

    counts: dict[str, int] = field(default_factory=dict)
    classes: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.problems or self.missing or self.unreadable)


def _listed_records(spec: DatasetSpec, root: str) -> dict[str, list[Record]]:
    """Every image the split lists name, even when some are missing.

    The real readers are used first; they stop at the first image of a split
    when it is missing, so in that case the two list formats are re-read
    here without that check, to report *every* missing file.
    """
    try:
        return read_raw_splits(spec, root)
    except DatasetError as exc:
        listed_image = exc.expected.startswith("an image listed in")
        if spec.layout not in (Layout.SPLIT_JSON, Layout.FGVC_TXT) or not listed_image:
            raise
    dataset_dir, image_dir = dataset_paths(spec, root)
    if spec.layout is Layout.SPLIT_JSON:
        assert spec.split_file
        with open(os.path.join(dataset_dir, spec.split_file), encoding="utf-8") as f:
            raw = json.load(f)
        return {k: [Record(os.path.join(image_dir, p), int(y), str(c)) for p, y, c in raw[k]]
                for k in SPLITS}
    with open(os.path.join(dataset_dir, "variants.txt"), encoding="utf-8") as f:
        label_of = {n: i for i, n in enumerate(line.strip() for line in f if line.strip())}
    out: dict[str, list[Record]] = {}
    for key in SPLITS:
        with open(os.path.join(dataset_dir, f"images_variant_{key}.txt"), encoding="utf-8") as f:
            rows = [line.strip().partition(" ") for line in f if line.strip()]
        out[key] = [Record(os.path.join(image_dir, i + ".jpg"), label_of[c], c) for i, _, c in rows]
    return out


def _image_problem(path: str) -> str | None:
    """None if PIL can open and verify the image, else 'missing' or 'unreadable'."""
    if not os.path.isfile(path):
        return "missing"
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
    except Exception:  # PIL raises many types for broken files
        return "unreadable"
    return None


def verify(spec: DatasetSpec, root: str, num_classes: int | None, *, open_images: bool,
           workers: int = 8) -> Report:
    """Read the dataset with the real readers and check every listed image.

    Checks: the readers accept the layout; per split, the number of images
    present equals the number listed; the number of classes equals
    ``num_classes`` (when given); with ``open_images`` every image is also
    opened and verified with PIL (``--check``), otherwise only its existence.
    """
    from tqdm import tqdm

    report = Report()
    try:
        splits = _listed_records(spec, root)
    except DatasetError as exc:
        report.problems.append(str(exc))
        return report
    seen: dict[str, None] = {}
    for key in SPLITS:
        records = splits.get(key, [])
        report.counts[key] = len(records)
        seen.update((r.impath, None) for r in records)
    labels = {r.label for recs in splits.values() for r in recs}
    report.classes = len(labels)
    if num_classes is not None and report.classes != num_classes:
        report.problems.append(f"{report.classes} classes, expected {num_classes}")
    if not splits.get("test"):
        report.problems.append("no test images")

    paths = list(seen)
    check = _image_problem if open_images else (lambda p: None if os.path.isfile(p) else "missing")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(check, paths)
        for path, problem in tqdm(zip(paths, results), total=len(paths), unit="img",
                                  desc=f"checking {spec.name}", leave=False, disable=None):
            if problem == "missing":
                report.missing.append(path)
            elif problem == "unreadable":
                report.unreadable.append(path)
    for key in SPLITS:
        listed = {r.impath for r in splits.get(key, [])}
        bad = len(listed & set(report.missing))
        if bad:
            report.problems.append(
                f"{key}: {len(listed) - bad} of {len(listed)} listed images present")
    return report


def _print_report(spec: DatasetSpec, report: Report) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    status = "OK" if report.ok else "FAILED"
    found = f" ({report.classes} classes; {counts})" if report.counts else ""
    print(f"{spec.name}: {status}{found}", flush=True)
    for problem in report.problems:
        print(f"  problem: {problem}")
    for path in report.missing:
        print(f"  missing: {path}")
    for path in report.unreadable:
        print(f"  unreadable: {path}")


# --------------------------------------------------------------------------- driver


def _write_marker(dataset_dir: str, report: Report) -> None:
    payload = {"counts": report.counts, "classes": report.classes,
               "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write(os.path.join(dataset_dir, MARKER),
                 lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1) + "\n"))


def prepare_dataset(spec: DatasetSpec, root: str, recipe: Recipe, *, force: bool = False) -> bool:
    """Download, unpack and verify one dataset; True if it is ready."""
    dataset_dir, _ = dataset_paths(spec, root)
    marker = os.path.join(dataset_dir, MARKER)
    if os.path.isfile(marker) and not force:
        print(f"{spec.name}: already prepared ({marker}), skipping", flush=True)
        return True
    os.makedirs(dataset_dir, exist_ok=True)
    print(f"{spec.name}: preparing in {dataset_dir}", flush=True)
    errors = []
    for fetch in recipe.fetches:  # keep going: report every problem of this dataset at once
        try:
            obtain(fetch, dataset_dir)
        except PrepareError as exc:
            errors.append(str(exc))
    missing_manual = [os.path.join(dataset_dir, p) for p in recipe.manual_paths
                      if not os.path.exists(os.path.join(dataset_dir, p))]
    if missing_manual:
        print(f"{spec.name}: MANUAL STEP NEEDED (missing: {', '.join(missing_manual)})")
        print(recipe.manual.format(dataset_dir=dataset_dir, root=root), flush=True)
    elif errors:
        print(f"{spec.name}: FAILED: " + "\n  ".join(errors), flush=True)
    if missing_manual or errors:
        return False
    report = verify(spec, root, recipe.num_classes, open_images=False)
    _print_report(spec, report)
    if not report.ok:
        return False
    _write_marker(dataset_dir, report)
    shutil.rmtree(os.path.join(dataset_dir, DOWNLOADS), ignore_errors=True)
    return True


def check_dataset(spec: DatasetSpec, root: str, recipe: Recipe) -> bool:
    """``--check``: verify an existing folder (open every image), download nothing."""
    report = verify(spec, root, recipe.num_classes, open_images=True)
    _print_report(spec, report)
    return report.ok


def resolve_names(names: Sequence[str]) -> list[DatasetSpec]:
    """Catalog specs for ``names``: catalog or config names, any case, or ``all``."""
    lookup: dict[str, DatasetSpec] = {}
    for spec in CATALOG.values():
        lookup[spec.name.lower()] = spec
        lookup[spec.config.lower()] = spec
        lookup[spec.dataset_dir.lower()] = spec
    out: list[DatasetSpec] = []
    for name in names:
        if name.lower() == "all":
            chosen = list(CATALOG.values())
        elif name.lower() in lookup:
            chosen = [lookup[name.lower()]]
        else:
            raise SystemExit(f"unknown dataset {name!r}; choose from: all, "
                             + ", ".join(s.config for s in CATALOG.values()))
        out.extend(s for s in chosen if s not in out)
    return out


def main(argv: Sequence[str] | None = None, *, recipes: Mapping[str, Recipe] | None = None) -> int:
    """Command-line entry; ``recipes`` overrides :data:`RECIPES` (tests use a local server)."""
    parser = argparse.ArgumentParser(
        prog="python -m clipprompt.data.prepare",
        description="Download, unpack and verify CoOp's datasets under --root.",
    )
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help="datasets (e.g. caltech101, EuroSAT, dtd) or 'all'")
    parser.add_argument("--root", required=True, help="the data root ($DATA)")
    parser.add_argument("--check", action="store_true",
                        help="verify existing folders only (open every image), download nothing")
    parser.add_argument("--force", action="store_true",
                        help="verify again even if a dataset is marked prepared")
    args = parser.parse_args(argv)
    recipes = dict(RECIPES if recipes is None else recipes)
    specs = resolve_names(args.names)
    root = os.path.abspath(os.path.expanduser(args.root))
    failed = []
    for spec in specs:
        recipe = recipes.get(spec.name, Recipe(spec.name, num_classes=spec.num_classes))
        ok = check_dataset(spec, root, recipe) if args.check else prepare_dataset(
            spec, root, recipe, force=args.force)
        if not ok:
            failed.append(spec.name)
    if failed:
        print(f"\nNot ready: {', '.join(failed)}", flush=True)
        return 1
    print(f"\nReady: {', '.join(s.name for s in specs)}", flush=True)
    return 0


__all__ = [
    "Fetch", "PrepareError", "RECIPES", "Recipe", "Report", "Source", "SourceError",
    "check_dataset", "fetch_file", "gdrive_download", "hf_download", "http_download",
    "main", "prepare_dataset", "resolve_names", "unpack", "verify",
]

if __name__ == "__main__":
    sys.exit(main())
