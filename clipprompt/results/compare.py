"""Ours beside the published numbers, per dataset and per protocol (`python -m clipprompt.report --compare`).

The input is deliberately plain, so it does not depend on how the report groups its rows:
``{(method, protocol, dataset, metric): values}``, the values of one number over seeds, either a
list or a ``{seed: value}`` dict (seeds pair Base with New for a per-seed HM, and datasets for a
per-seed average). ``method`` is our row's name: the trainer, or ``Trainer [tag]`` for a tagged
variant; the published numbers are looked up by its trainer (the name before the first space).
Metrics: base2new ``base``/``new``; xd and dg ``accuracy`` (the source is dataset ``imagenet``);
few_shot ``shots_<K>``. :func:`from_records` builds the input from the report's records.

For each method and number: ours (mean ± sample std over seeds, n), the published number, the
difference ours − published, and whether it lies within two standard deviations of our seeds
(``yes``/``no``; ``–`` with fewer than two seeds). HM (base2new, per dataset: of each seed's Base
and New) and averages over the protocol's datasets (per seed, over seeds that have every dataset)
are derived here, as the papers compute them.

Dassl-free and torch-free: the standard library only.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from . import protocols
from .published_numbers import AVERAGE, Number, harmonic_mean, lookup, unknown_tables

GAP = "–"
#: the metrics of each protocol, in table order
METRICS = {
    "base2new": ("base", "new", "hm"),
    "xd": ("accuracy",),
    "dg": ("accuracy",),
    "few_shot": tuple(f"shots_{k}" for k in protocols.SHOTS),
}
TITLES = {"base2new": "Base-to-new", "xd": "Cross-dataset transfer", "dg": "Domain generalization",
          "few_shot": "Few-shot"}


@dataclass
class Row:
    """One number: ours over seeds, the published one, and how they differ."""

    method: str
    protocol: str
    dataset: str
    metric: str
    seeds: dict  # seed -> our value
    published: Number | None

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.seeds.values()) if self.seeds else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.seeds.values()) if self.n >= 2 else None

    @property
    def published_value(self) -> float | None:
        return self.published.value if self.published else None

    @property
    def difference(self) -> float | None:
        if self.mean is None or self.published_value is None:
            return None
        return self.mean - self.published_value

    @property
    def within_two_std(self) -> bool | None:
        """|ours − published| ≤ 2 × the std of our seeds; None with fewer than two seeds or no published number."""
        if self.difference is None or self.std is None:
            return None
        return abs(self.difference) <= 2 * self.std


def trainer_of(method: str) -> str:
    return method.split(" ", 1)[0]


def _by_seed(values) -> dict:
    if isinstance(values, Mapping):
        return dict(values)
    return dict(enumerate(values))


def _datasets(protocol: str) -> tuple[str, ...]:
    return protocols.datasets_of(protocol)


def derive(ours: Mapping[tuple, object]) -> dict[tuple, dict]:
    """`ours` with seeds as dicts, plus each base2new HM and each protocol's average over its datasets."""
    out = {key: _by_seed(values) for key, values in ours.items()}
    methods = {(m, p) for m, p, _, _ in out}
    for method, protocol in methods:
        if protocol == "base2new":
            for dataset in {d for m, p, d, _ in out if (m, p) == (method, protocol)}:
                base, new = out.get((method, protocol, dataset, "base"), {}), out.get((method, protocol, dataset, "new"), {})
                hm = {s: harmonic_mean(base[s], new[s]) for s in base if s in new}
                if hm:
                    out[(method, protocol, dataset, "hm")] = hm
        for metric in METRICS.get(protocol, ()):
            if protocol == "base2new" and metric == "hm":
                continue
            per_dataset = [out.get((method, protocol, d, metric), {}) for d in _datasets(protocol)]
            seeds = set.intersection(*(set(v) for v in per_dataset)) if per_dataset else set()
            if seeds:
                out[(method, protocol, AVERAGE, metric)] = {
                    s: statistics.fmean(v[s] for v in per_dataset) for s in sorted(seeds, key=str)}
        if protocol == "base2new":
            base, new = (out.get((method, protocol, AVERAGE, m), {}) for m in ("base", "new"))
            hm = {s: harmonic_mean(base[s], new[s]) for s in base if s in new}
            if hm:
                out[(method, protocol, AVERAGE, "hm")] = hm
    return out


def _dataset_order(protocol: str) -> list[str]:
    first = [protocols.SOURCE] if protocol in ("xd", "dg") else []
    return [*first, *_datasets(protocol), AVERAGE]


def compare(ours: Mapping[tuple, object], protocol: str) -> list[Row]:
    """The rows of one protocol: every number of ours and every published number of a trainer we ran."""
    values = {k: v for k, v in derive(ours).items() if k[1] == protocol}
    published = lookup(protocol)
    methods = sorted({m for m, *_ in values})
    order = {d: i for i, d in enumerate(_dataset_order(protocol))}
    metrics = METRICS.get(protocol, ())
    rows = []
    for method in methods:
        trainer = trainer_of(method)
        keys = {(d, x) for m, _, d, x in values if m == method}
        keys |= {(d, x) for t, d, x in published if t == trainer and d != "*" and x in metrics}
        for dataset, metric in sorted(keys, key=lambda k: (order.get(k[0], len(order)), k[0],
                                                           metrics.index(k[1]) if k[1] in metrics else 99)):
            rows.append(Row(method, protocol, dataset, metric, values.get((method, protocol, dataset, metric), {}),
                            published.get((trainer, dataset, metric))))
    return rows


def from_records(records: Iterable, warn=None) -> dict[tuple, dict]:
    """The compare input from the report's records (attributes protocol, part, trainer, dataset, seed,
    accuracy, path, and `tag` where records have one). Two records for one number and seed (two
    configs of one method, say): the first is kept and `warn` names both folders."""
    out: dict[tuple, dict] = {}
    where: dict[tuple, str] = {}
    for r in records:
        tag = getattr(r, "tag", None)
        method = f"{r.trainer} [{tag}]" if tag else r.trainer
        if r.protocol == "base2new":
            metric = r.part
        elif r.protocol in ("xd", "dg"):
            metric = "accuracy"
        else:
            metric = r.part  # few_shot: shots_<K>
        key = (method, r.protocol, r.dataset, metric)
        seeds = out.setdefault(key, {})
        if r.seed in seeds:
            if warn and where[(key, r.seed)] != r.path:
                warn(f"two results for {method} {r.protocol} {r.dataset} {metric} seed {r.seed}: "
                     f"{where[(key, r.seed)]} and {r.path}; --compare uses the first")
            continue
        seeds[r.seed] = r.accuracy
        where[(key, r.seed)] = r.path
    return out


# -- output ------------------------------------------------------------------------------------


def _number(x: float | None, signed: bool = False) -> str:
    if x is None:
        return GAP
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def _ours(row: Row) -> str:
    if row.mean is None:
        return GAP
    text = _number(row.mean)
    if row.std is not None:
        text += f" ± {row.std:.2f}"
    return text + f" (n={row.n})"


def _within(row: Row) -> str:
    return {True: "yes", False: "no", None: GAP}[row.within_two_std]


def _published(row: Row, sources: dict) -> str:
    p = row.published
    if p is None:
        return GAP
    if p.value is None:
        return f"unknown [{sources.setdefault(p.source, len(sources) + 1)}]"
    mark = " (derived)" if p.status == "derived" else ""
    return f"{p.value:.2f}{mark} [{sources.setdefault(p.source, len(sources) + 1)}]"


def markdown(ours: Mapping[tuple, object], which: Sequence[str] = protocols.PROTOCOLS) -> str:
    """One table per protocol that has runs of ours, then the numbered sources and the tables not read."""
    out, sources = [], {}
    present = {p for _, p, _, _ in ours}
    for protocol in which:
        if protocol not in present:
            continue
        rows = compare(ours, protocol)
        out += [f"### {TITLES.get(protocol, protocol)}: ours vs published, per dataset", "",
                "| method | dataset | metric | ours (mean ± std, n seeds) | published | Δ (ours − published) "
                "| within 2 std |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            out.append(f"| {r.method} | {r.dataset} | {r.metric} | {_ours(r)} | {_published(r, sources)} "
                       f"| {_number(r.difference, signed=True)} | {_within(r)} |")
        missing = unknown_tables(protocol)
        for method in sorted({r.method for r in rows}):
            n = missing.get(trainer_of(method))
            if n is not None:
                out.append(f"\n{method}: some published numbers are unknown [{sources.setdefault(n.source, len(sources) + 1)}]")
        out.append("")
    if sources:
        out.append("Sources:")
        out += [f"[{i}] {source}" for source, i in sources.items()]
    return "\n".join(out).rstrip() + "\n"


def csv_rows(ours: Mapping[tuple, object], which: Sequence[str] = protocols.PROTOCOLS) -> list[list]:
    """The same numbers, one line each, full precision (the report's `--format csv --compare`)."""
    lines = [["protocol", "method", "dataset", "metric", "mean", "std", "n_seeds", "published", "published_status",
              "difference", "within_2_std", "published_source"]]
    fmt = lambda x: "" if x is None else repr(x)  # noqa: E731
    present = {p for _, p, _, _ in ours}
    for protocol in which:
        if protocol not in present:
            continue
        for r in compare(ours, protocol):
            p = r.published
            lines.append([protocol, r.method, r.dataset, r.metric, fmt(r.mean), fmt(r.std), r.n,
                          fmt(r.published_value), p.status if p else "", fmt(r.difference),
                          {True: "yes", False: "no", None: ""}[r.within_two_std], p.source if p else ""])
    return lines
