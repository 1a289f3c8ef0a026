"""The published numbers of other papers (`clipprompt/results/published/*.csv`), read in one place.

One long-format CSV per protocol (`base2new`, `xd`, `dg`, `few_shot`) and one of training costs
(`cost`), all with the columns of :data:`COLUMNS`: one number per line, with the method's name as
printed, the trainer of ours it is compared with, the dataset (a config stem, `average` for the
papers' average, `*` on an `unknown` line that stands for a whole table), the metric, the value,
its status and where it was read. The report's `--compare`, its `--plot` figures and the tests all
read the numbers through this module; `published/README.md` says what was read where.

Dassl-free and torch-free: the standard library only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from . import protocols

FOLDER = Path(__file__).resolve().parent / "published"
COLUMNS = ("method", "trainer", "dataset", "metric", "value", "status", "source")
FILES = (*protocols.PROTOCOLS, "cost")
#: read: printed in the named source; derived: computed from stated differences, printed nowhere;
#: unknown: not read yet (no value; the source names the table to read).
STATUSES = ("read", "derived", "unknown")
AVERAGE = "average"
ANY = "*"
#: (method, dataset) whose printed HM is not the harmonic mean of the printed Base and New: kept as
#: printed (the same image's Δ row confirms it), and left out of the HM check. Nothing else is.
HM_AS_PRINTED = frozenset({
    ("PromptKD (ViT-L/14 teacher, unlabeled)", "stanford_cars"),  # 83.13; HM of 82.80 and 83.37 is 83.08
    ("PromptKD (ViT-L/14 teacher, unlabeled)", "ucf101"),  # 86.10; HM of 89.71 and 82.27 is 85.83
})


@dataclass(frozen=True)
class Number:
    """One published number (value None where it is not known)."""

    protocol: str  # a file stem: base2new, xd, dg, few_shot or cost
    method: str  # as the source prints it
    trainer: str  # our Dassl trainer it is compared with; "" for a method we do not have
    dataset: str  # config stem, "average", or "*" for a whole unknown table
    metric: str  # base/new/hm, accuracy, shots_<K>, train_seconds, memory_mib
    value: float | None
    status: str
    source: str


def numbers(protocol: str | None = None, folder: Path = FOLDER) -> list[Number]:
    """Every line of `<protocol>.csv` (of every file if None), in file order; [] for a missing file.

    A line with a value that is not a number raises ValueError naming the file and line.
    """
    out = []
    for stem in FILES if protocol is None else (protocol,):
        path = Path(folder) / f"{stem}.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(COLUMNS)}")
            for row in reader:
                try:
                    value = float(row["value"]) if row["value"].strip() else None
                except ValueError:
                    raise ValueError(f"{path}:{reader.line_num}: value {row['value']!r} is not a number") from None
                out.append(Number(stem, row["method"], row["trainer"], row["dataset"], row["metric"], value,
                                  row["status"], row["source"]))
    return out


def lookup(protocol: str) -> dict[tuple[str, str, str], Number]:
    """(trainer, dataset, metric) -> the published number of our trainer, for one protocol."""
    return {(n.trainer, n.dataset, n.metric): n for n in numbers(protocol) if n.trainer}


def unknown_tables(protocol: str) -> dict[str, Number]:
    """trainer -> the `unknown` line that stands for tables not yet read (its source names them)."""
    return {n.trainer: n for n in numbers(protocol) if n.trainer and n.status == "unknown"}


def harmonic_mean(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b else 0.0


def problems(all_numbers: Iterable[Number], trainers: Iterable[str], tolerance: float = 0.015) -> list[str]:
    """What is wrong with the published numbers (empty when nothing is): the checks the test runs.

    A `read` or `derived` number has a value and a source; an `unknown` one has no value and names
    the table to read; accuracies lie in [0, 100], costs are positive; each HM is the harmonic mean
    of its Base and New within rounding (but those in `HM_AS_PRINTED`); each average (Base, New,
    accuracy) is the mean of its rows within rounding where every row of the protocol is there;
    every trainer named exists; no number is given twice, and no trainer is compared with two
    numbers (a second published variant of one of our trainers has an empty trainer).
    """
    trainers = set(trainers)
    found = list(all_numbers)
    out = []
    seen: dict = {}
    by_trainer: dict = {}
    for n in found:
        where = f"{n.protocol}.csv {n.method} {n.dataset} {n.metric}"
        if n.status not in STATUSES:
            out.append(f"{where}: status {n.status!r} is not one of {STATUSES}")
        if n.status in ("read", "derived") and n.value is None:
            out.append(f"{where}: {n.status} without a value")
        if n.status == "unknown" and n.value is not None:
            out.append(f"{where}: unknown with a value")
        if not n.source.strip():
            out.append(f"{where}: no source")
        if n.trainer and n.trainer not in trainers:
            out.append(f"{where}: trainer {n.trainer!r} does not exist")
        if n.value is not None:
            top = float("inf") if n.protocol == "cost" else 100.0
            if not 0 < n.value <= top:
                out.append(f"{where}: {n.value} is out of range")
        key = (n.protocol, n.method, n.dataset, n.metric)
        if key in seen:
            out.append(f"{where}: given twice")
        seen[key] = n
        compared = (n.protocol, n.trainer, n.dataset, n.metric)
        if n.trainer and ANY not in (n.dataset, n.metric):
            if compared in by_trainer:
                out.append(f"{where}: trainer {n.trainer} already has this number from "
                           f"{by_trainer[compared].method!r}")
            by_trainer[compared] = n
    for (protocol, method, dataset, metric), n in seen.items():
        if dataset == AVERAGE and protocol in protocols.PROTOCOLS and metric != "hm" and n.value is not None:
            rows = [seen.get((protocol, method, d, metric)) for d in protocols.datasets_of(protocol)]
            if all(r is not None and r.value is not None for r in rows):
                mean = sum(r.value for r in rows) / len(rows)
                if abs(mean - n.value) > tolerance:
                    out.append(f"{protocol}.csv {method} average {metric}: {n.value} is not the mean "
                               f"{mean:.3f} of its {len(rows)} rows")
        if protocol != "base2new" or metric != "hm" or n.value is None or (method, dataset) in HM_AS_PRINTED:
            continue
        base, new = (seen.get((protocol, method, dataset, m)) for m in ("base", "new"))
        if base and new and base.value is not None and new.value is not None:
            expected = harmonic_mean(base.value, new.value)
            if abs(expected - n.value) > tolerance:
                out.append(f"base2new.csv {method} {dataset}: HM {n.value} is not the harmonic mean "
                           f"{expected:.3f} of Base {base.value} and New {new.value}")
    return out
