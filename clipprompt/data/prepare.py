"""Download, unpack and verify the 15 CoOp datasets in one command (Dassl-free).

Usage::

    python -m clipprompt.data.prepare caltech101 EuroSAT --root $DATA
    python -m clipprompt.data.prepare all --root $DATA
    python -m clipprompt.data.prepare all --root $DATA --dry-run  # every file and URL, in order
    python -m clipprompt.data.prepare all --root $DATA --check    # verify only, no download
    python -m clipprompt.data.prepare caltech101 --root $DATA --descriptions coprompt  # CoPrompt's class descriptions

The pieces: ``recipes.py`` (what each dataset needs, from where), ``download.py`` (sources in
order, resumable HTTP, gdown, unpacking), ``verify.py`` (counts and images). This module is the
command: a dataset that passed verification gets a ``.prepared.json`` marker and is skipped
next time. ``--descriptions SET`` fetches a method's published class descriptions instead of the
images (``descriptions.py``), with the same checks. The library raises its own errors; only :func:`main` turns them into exit codes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from ..fileio import atomic_write
from .build import dataset_paths
from .catalog import CATALOG, DatasetSpec
from . import descriptions
from .download import (DOWNLOADS, Fetch, Source, SourceError, fetch_file, gdrive_download,
                       http_download, obtain, unpack)
from .errors import DataConfigError, PrepareError
from .recipes import RECIPES, Recipe
from .verify import Report, print_report, verify

MARKER = ".prepared.json"


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
    archives = [fetch for fetch in recipe.fetches if fetch.archive]
    if report.missing and force and archives:  # partly extracted: unpack again, adding what is missing
        print(f"{spec.name}: repairing {len(report.missing)} missing images: unpacking "
              f"{', '.join(fetch.filename for fetch in archives)} again", flush=True)
        try:
            for fetch in archives:
                obtain(fetch, dataset_dir, repair=True)
        except PrepareError as exc:
            print(f"{spec.name}: FAILED: {exc}", flush=True)
            return False
        report = verify(spec, root, recipe.num_classes, open_images=False)
    print_report(spec, report)
    if report.missing and not force:
        print(f"  {len(report.missing)} listed images are missing (an interrupted download or unpacking?); "
              f"repair with: python -m clipprompt.data.prepare {spec.config} --root {root} --force "
              "(downloads and unpacks its archives again, adding only the missing files)", flush=True)
    if not report.ok:
        return False
    _write_marker(dataset_dir, report)
    shutil.rmtree(os.path.join(dataset_dir, DOWNLOADS), ignore_errors=True)
    return True


def check_root(root: str) -> None:
    """The data root is a folder this process can write in (created when absent), or one line why not."""
    if os.path.exists(root) and not os.path.isdir(root):
        raise DataConfigError(f"--root {root} cannot hold the datasets: it is a file, not a folder; "
                              "give the folder that holds (or will hold) them")
    try:
        os.makedirs(root, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise DataConfigError(f"--root {root} cannot hold the datasets: {exc.strerror or exc} "
                              f"({exc.filename or root}); give a folder you can write in") from None


def check_dataset(spec: DatasetSpec, root: str, recipe: Recipe) -> bool:
    """``--check``: verify an existing folder (open every image), download nothing."""
    report = verify(spec, root, recipe.num_classes, open_images=True)
    print_report(spec, report)
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
            raise DataConfigError(f"unknown dataset {name!r}; choose from: all, "
                                  + ", ".join(s.config for s in CATALOG.values()))
        out.extend(s for s in chosen if s not in out)
    return out


def dry_run(spec: DatasetSpec, root: str, recipe: Recipe) -> None:
    """Print, without any network access or write, every file and source tried, in order."""
    dataset_dir, _ = dataset_paths(spec, root)
    state = " (already prepared)" if os.path.isfile(os.path.join(dataset_dir, MARKER)) else ""
    print(f"{spec.name}: {dataset_dir}{state}")
    for fetch in recipe.fetches:
        kind = "archive" if fetch.archive else "file"
        print(f"  {fetch.filename} ({kind}, provides {fetch.provides}):")
        for i, source in enumerate(fetch.sources, 1):
            print(f"    {i}. {source.describe()}")
    if recipe.manual_paths:
        print(f"  manual step if missing: {', '.join(recipe.manual_paths)}")


def prepare_descriptions(spec: DatasetSpec, root: str, set_name: str, *, force: bool = False) -> bool:
    """Download and check one dataset's file of a description set; True if it is in place and valid."""
    dataset_dir, _ = dataset_paths(spec, root)
    fetch = descriptions.descriptions_fetch(spec, set_name)
    path = os.path.join(dataset_dir, fetch.provides)
    if os.path.isfile(path) and force:
        os.remove(path)
    os.makedirs(dataset_dir, exist_ok=True)
    try:
        obtain(fetch, dataset_dir)
    except PrepareError as exc:  # one line: a description set has one source per file
        print(f"{spec.name}: FAILED: {' '.join(str(exc).split())}", flush=True)
        return False
    finally:
        shutil.rmtree(os.path.join(dataset_dir, DOWNLOADS), ignore_errors=True)
    problem = descriptions.check_file(spec, root, set_name)
    if problem:
        os.remove(path)  # never keep a wrong file
        print(f"{spec.name}: FAILED: {problem}", flush=True)
        return False
    print(f"{spec.name}: {set_name} descriptions OK ({path})", flush=True)
    return True


def check_descriptions(spec: DatasetSpec, root: str, set_name: str) -> bool:
    problem = descriptions.check_file(spec, root, set_name)
    print(f"{spec.name}: {set_name} descriptions " + (f"FAILED: {problem}" if problem else "OK"), flush=True)
    return problem is None


def dry_run_descriptions(spec: DatasetSpec, root: str, set_name: str) -> None:
    path = descriptions.descriptions_path(spec, root, set_name)
    state = " (present)" if os.path.isfile(path) else ""
    print(f"{spec.name}: {path}{state}")
    for i, source in enumerate(descriptions.descriptions_fetch(spec, set_name).sources, 1):
        print(f"    {i}. {source.describe()}")


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
                        help="verify again even if a dataset is marked prepared; a partly extracted dataset "
                        "is repaired (its archives downloaded and unpacked again, adding only missing files)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print every file and URL that would be tried, in order; download nothing")
    parser.add_argument("--descriptions", choices=sorted(descriptions.DESCRIPTION_SETS), metavar="SET",
                        help="instead of the images, get a method's published class descriptions "
                        f"({', '.join(sorted(descriptions.DESCRIPTION_SETS))}: CoPrompt's GPT-3 descriptions)")
    args = parser.parse_args(argv)
    recipes = dict(RECIPES if recipes is None else recipes)
    try:
        specs = resolve_names(args.names)
    except DataConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    root = os.path.abspath(os.path.expanduser(args.root))
    if args.dry_run:
        for spec in specs:
            if args.descriptions:
                dry_run_descriptions(spec, root, args.descriptions)
            else:
                dry_run(spec, root, recipes.get(spec.name, Recipe(spec.name)))
        return 0
    if not args.check:
        try:
            check_root(root)
        except DataConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    failed = []
    for spec in specs:
        recipe = recipes.get(spec.name, Recipe(spec.name, num_classes=spec.num_classes))
        if args.descriptions:
            ok = (check_descriptions(spec, root, args.descriptions) if args.check
                  else prepare_descriptions(spec, root, args.descriptions, force=args.force))
        else:
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
    "check_dataset", "dry_run", "fetch_file", "gdrive_download", "http_download",
    "main", "prepare_dataset", "resolve_names", "unpack", "verify",
]

if __name__ == "__main__":
    sys.exit(main())
