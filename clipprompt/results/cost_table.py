"""What each method cost, per protocol (`python -m clipprompt.report OUTPUT --cost`).

Reads the `cost` block each run writes into result.json (`clipprompt.runs.cost`: training and
evaluation wall time, training images per second, peak GPU memory (CUDA's max allocated), peak RSS,
trainable parameters) and prints one row per protocol and method: the mean over the runs that
recorded each number, with how many runs that is where fewer than the row's runs did. Evaluation-
only runs (a base-to-new test on new classes, a cross-dataset target) have no training numbers;
results written before costs were recorded count as runs without numbers.

Dassl-free and torch-free: the standard library only.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from . import report

GAP = "–"
#: result.json cost field -> column title
FIELDS = {
    "train_seconds": "train s",
    "eval_seconds": "eval s",
    "train_images_per_second": "train img/s",
    "peak_gpu_memory_mib": "peak GPU MiB",
    "peak_rss_mib": "peak RSS MiB",
    "trainable_parameters": "trainable params",
}


def collect(root: str | Path, protocol: str = "all", warn=None) -> dict[tuple[str, str], list[dict]]:
    """(protocol, method) -> the cost blocks of its runs ({} for a run that recorded none).

    The protocol is what the result says, or its folder's place in the protocol layout, or "–".
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(Path(root).rglob(report.RESULT_FILE)):
        try:
            result = json.loads(path.read_text())
            if not isinstance(result, dict):
                raise TypeError("not a JSON object")
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            if warn:
                warn(f"unreadable {path} ({type(error).__name__}: {error}); not counted")
            continue
        where = report.from_result(result, report.locate(path.parent.resolve().parts))
        found = where[0]["protocol"] if where else (result.get("protocol") or GAP)
        if protocol != "all" and found != protocol:
            continue
        method = result.get("method") or result.get("trainer") or (where[0]["trainer"] if where else GAP)
        if result.get("tag"):
            method = f"{method} [{result['tag']}]"
        groups.setdefault((found, method), []).append(result.get("cost") or {})
    return dict(sorted(groups.items()))


def rows(groups: dict[tuple[str, str], list[dict]]) -> list[list]:
    """[protocol, method, runs, then per field (mean or None, runs that recorded it)]."""
    out = []
    for (protocol, method), costs in groups.items():
        row = [protocol, method, len(costs)]
        for field in FIELDS:
            values = [c[field] for c in costs if isinstance(c.get(field), (int, float))]
            row.append((statistics.fmean(values) if values else None, len(values)))
        out.append(row)
    return out


def _cell(field: str, value: float | None, n: int, runs: int) -> str:
    if value is None:
        return GAP
    text = f"{value:,.0f}" if field == "trainable_parameters" else f"{value:.1f}"
    return text + (f" ({n} of {runs} runs)" if n < runs else "")


def markdown(groups: dict[tuple[str, str], list[dict]]) -> str:
    out = ["### Cost per method and protocol (mean over runs)", "",
           "| protocol | method | runs | " + " | ".join(FIELDS.values()) + " |", "|---" * (3 + len(FIELDS)) + "|"]
    for protocol, method, runs, *cells in rows(groups):
        shown = [_cell(field, value, n, runs) for field, (value, n) in zip(FIELDS, cells)]
        out.append(f"| {protocol} | {method} | {runs} | " + " | ".join(shown) + " |")
    out += ["", "Wall times in seconds; train img/s: training images per second of training wall time; memory in "
            f"MiB ({GAP}: not recorded, e.g. no GPU or an evaluation-only run)."]
    return "\n".join(out) + "\n"


def to_csv(groups: dict[tuple[str, str], list[dict]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["protocol", "method", "runs", *(f for field in FIELDS for f in (field, f"{field}_runs"))])
    for protocol, method, runs, *cells in rows(groups):
        writer.writerow([protocol, method, runs, *(x for value, n in cells for x in ("" if value is None else repr(value), n))])
    return buffer.getvalue()
