"""Verification of a prepared dataset: the real readers, class and image counts, PIL checks."""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .build import dataset_paths, read_raw_splits
from .catalog import DatasetSpec, Layout
from .errors import DatasetError, MissingImageError
from .records import SPLITS, Record


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
    except MissingImageError:
        if spec.layout not in (Layout.SPLIT_JSON, Layout.FGVC_TXT):
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


def print_report(spec: DatasetSpec, report: Report) -> None:
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
