"""Getting one file of a dataset: sources tried in order, resumable HTTP, gdown, unpacking.

Network access goes through two seams that tests replace: :func:`http_download` (plain
HTTP(S), also used for the Hugging Face mirror through its ``resolve/main/`` addresses) and
:func:`gdrive_download` (gdown). Downloads go through a ``.part`` file resumed with an HTTP
``Range`` request, or restarted when the server cannot resume or the result fails its
size/sha256 check.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .catalog import mirror_url
from .errors import PrepareError

DOWNLOADS = ".downloads"
STAGING = ".unpack"
CHUNK = 1 << 20


class SourceError(RuntimeError):
    """One source of one file failed; the next fallback is tried."""


@dataclass(frozen=True)
class Source:
    """Where a file can be fetched from.

    ``kind`` is ``"url"`` (``ref`` is an HTTP(S) URL), ``"gdrive"`` (``ref`` is a Google Drive
    file id) or ``"mirror"`` (``ref`` is a file name of the Hugging Face mirror). ``size`` and
    ``sha256`` are checked when known. ``member`` set: the file wanted is the member of that
    name inside the downloaded archive (CoOp's split files are inside the mirror's zips); size
    and sha256 then describe the archive.
    """

    kind: str
    ref: str
    size: int | None = None
    sha256: str | None = None
    member: str | None = None

    @property
    def url(self) -> str:
        if self.kind == "gdrive":
            return f"https://drive.google.com/file/d/{self.ref}/view"
        if self.kind == "mirror":
            return mirror_url(self.ref)
        return self.ref

    def describe(self) -> str:
        text = self.url
        if self.size is not None:
            text += f" ({self.size:,} bytes"
            text += f", sha256 {self.sha256[:12]}…)" if self.sha256 else ")"
        if self.member:
            text = f"{self.member} from inside {text}"
        return text


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


def _extract_member(archive: str, member: str, dest: str) -> None:
    """Copy the archive member whose file name is ``member`` (at any depth) to ``dest``."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                name = next((n for n in zf.namelist() if n.rsplit("/", 1)[-1] == member
                             and not n.startswith("__MACOSX/")), None)
                if name is not None:
                    with zf.open(name) as f, open(dest, "wb") as out:
                        shutil.copyfileobj(f, out)
                    return
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                info = next((m for m in tf.getmembers() if m.isfile()
                             and m.name.rsplit("/", 1)[-1] == member), None)
                if info is not None:
                    with tf.extractfile(info) as f, open(dest, "wb") as out:
                        shutil.copyfileobj(f, out)
                    return
        else:
            raise SourceError(f"{os.path.basename(archive)} is not an archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise SourceError(f"{os.path.basename(archive)} is damaged ({exc})") from exc
    raise SourceError(f"{os.path.basename(archive)} holds no {member}")


def _download(source: Source, dest: str) -> None:
    if source.kind in ("url", "mirror"):
        http_download(source.url, dest, size=source.size)
    elif source.kind == "gdrive":
        gdrive_download(source.ref, dest)
    else:
        raise SourceError(f"unknown source kind {source.kind!r}")


def _fetch_one(source: Source, dest: str) -> None:
    """Fetch ``dest`` from one source, retrying once from scratch if the result is wrong."""
    target = dest
    if source.member:  # download the archive beside dest, then take the member out of it
        target = os.path.join(os.path.dirname(dest), os.path.basename(source.ref))
    for attempt in (1, 2):
        if not (source.member and os.path.isfile(target) and _check_file(target, source) is None):
            _download(source, target)
        problem = _check_file(target, source)
        if problem is None:
            break
        os.remove(target)  # never keep a wrong file; a resumed .part is the usual culprit
        then = "restarting from scratch" if attempt == 1 else "giving up on this source"
        print(f"  {os.path.basename(target)}: {problem}; {then}", flush=True)
    else:
        raise SourceError(problem)
    if source.member:
        try:
            _extract_member(target, source.member, dest)
        finally:
            os.remove(target)


def fetch_file(fetch: Fetch, downloads: str) -> str:
    """Get ``fetch.filename`` into ``downloads`` from the first source that works."""
    os.makedirs(downloads, exist_ok=True)
    dest = os.path.join(downloads, fetch.filename)
    if os.path.isfile(dest):  # complete (renamed from .part) but not yet unpacked
        if any(s.member or _check_file(dest, s) is None for s in fetch.sources):
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
            src, dst = os.path.join(holder, name), os.path.join(dataset_dir, name)
            if not os.path.exists(dst):
                shutil.move(src, dst)
            elif os.path.isdir(src) and os.path.isdir(dst):
                _add_missing(src, dst)  # a partly extracted folder: fill its gaps
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _add_missing(src: str, dst: str) -> None:
    """Move the files of ``src`` that ``dst`` lacks into it; a file already there is never replaced."""
    for folder, _, files in os.walk(src):
        target = os.path.join(dst, os.path.relpath(folder, src))
        for name in files:
            if not os.path.exists(os.path.join(target, name)):
                os.makedirs(target, exist_ok=True)
                shutil.move(os.path.join(folder, name), os.path.join(target, name))


def _exists_any(dataset_dir: str, fetch: Fetch) -> bool:
    return any(os.path.exists(os.path.normpath(os.path.join(dataset_dir, p)))
               for p in (fetch.provides, *fetch.also_ok))


def obtain(fetch: Fetch, dataset_dir: str, *, repair: bool = False) -> None:
    """Make ``fetch.provides`` exist in ``dataset_dir`` (download, unpack, place). With ``repair`` an
    archive is fetched and unpacked even where its folder exists, adding the files it lacks."""
    if _exists_any(dataset_dir, fetch) and not repair:
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
