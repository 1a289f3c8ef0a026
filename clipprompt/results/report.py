"""Results tables from an output tree: seeds averaged, as markdown or CSV.

    python -m clipprompt.report OUTPUT_DIR [--protocol base2new|xd|dg|few_shot|all]
                                [--format markdown|csv] [--compare] [--cost] [--plot DIR]

Every run folder under OUTPUT_DIR is read: its `result.json` (full precision), which says
what the run was (protocol, part, config name, method, shots, seed); folders written before
results recorded these are placed by their path (the layout `scripts/common/` writes), with
the shots still taken from the result. Without a `result.json`, the last `* accuracy: X%` line
of the newest Dassl log is used (`log.txt`, or `log.txt-<timestamp>`; one decimal) and
flagged. A run evaluated before its training finished is marked †; a `result.json` that does
not parse, or whose accuracy is not a finite number, is listed as unreadable and the other runs
are still read. A folder under the layout's folders that is not a run folder (`seed1.bak`) is
listed and left out. Runs are grouped by protocol, method (trainer and tag) and shots, whatever
config each dataset used (a note says which, when more than one); each cell is the mean over
seeds ± their sample standard deviation. Two results for one cell and seed are a warning naming
both folders (the first counts). A dataset, seed or run that is missing is a gap
("–" in markdown, an empty field in CSV), never a zero, and cells with fewer seeds than
their table's other cells say how many they have. Runs outside the protocol layout (plain
train.py) are a table of their own, by trainer, dataset, config, classes and shots.

Base-to-new: per dataset Base, New and HM (of the averaged Base and New), and the average over
the 11 datasets, its HM computed from the averaged Base and New as the papers do. Cross-dataset
and domain generalization: one row per method, the source (ImageNet) and each target, and the
average over the targets. Few-shot: per dataset accuracy at each number of shots. An average
over part of its datasets is shown and marked (`avg 4/11`). Each protocol starts with one table of
every method, best first. `--compare` adds, per protocol and dataset, ours beside the published
numbers (`clipprompt/results/compare.py`, numbers in `clipprompt/results/published/`), the
difference and whether it lies within two standard deviations of our seeds; `--cost` prints the
cost table (`clipprompt/results/cost_table.py`); `--plot DIR` draws the figures (`clipprompt/results/figures.py`;
the published numbers only with `--compare`).

Dassl-free and torch-free: only the standard library (matplotlib for --plot).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from . import identity, layout, protocols, published_numbers

RESULT_FILE = "result.json"
GAP = "–"
UNFINISHED = "†"  # marks a cell with a run whose training did not finish
_ACCURACY = re.compile(r"^\* accuracy: ([0-9.]+)%", re.MULTILINE)
_LOG = re.compile(r"^log\.txt(-.+)?$")


@dataclass(frozen=True)
class Record:
    """One finished evaluation, located by its folder in the output tree."""

    protocol: str  # base2new, xd, dg, few_shot
    part: str  # base2new: base / new; xd, dg: source / target; few_shot: shots_<K>
    trainer: str
    config: str
    shots: int | None  # training shots (None for zero-shot)
    dataset: str  # config stem, e.g. caltech101
    seed: int | None  # None for zero-shot
    accuracy: float
    source: str  # "result.json" or the log file's name
    path: str
    unfinished: bool = False  # evaluated a run whose training did not finish (an intermediate epoch)
    tag: str = ""  # a named variant of the method (TAG=, --tag): its own row
    classes: str = ""  # the class subset, for runs outside the protocol layout
    identity: dict | None = field(default=None, compare=False, hash=False, repr=False)  # clipprompt.results.identity

    @property
    def method(self) -> str:
        return f"{self.trainer}{layout.TAG_MARK}{self.tag}" if self.tag else self.trainer


def _int(text: str, prefix: str) -> int | None:
    return int(text[len(prefix):]) if text.startswith(prefix) and text[len(prefix):].isdigit() else None


#: the folder under OUTPUT of a trained run's protocol part -> the (protocol, part) the layout knows it by
_TRAINED_TOPS: dict[str, tuple[str, str]] = {}
for _key, _top in layout.FOLDERS.items():
    _TRAINED_TOPS.setdefault(_top, _key)


def locate(parts: Sequence[str]) -> list[dict] | None:
    """What a run folder holds, from the tail of its path (`clipprompt.results.layout` read backwards);
    None for folders of another layout.

    An ImageNet training or zero-shot evaluation is the source column of both xd and dg, so a list.
    """
    p = list(parts)
    key = None
    if len(p) >= 7 and "/".join(p[-7:-5]) in _TRAINED_TOPS:
        shots, seed = _int(p[-4], "shots_"), _int(p[-1], "seed")
        if shots is None or seed is None:
            return None
        protocol, part = _TRAINED_TOPS["/".join(p[-7:-5])]
        key = layout.RunKey(protocol, part, *layout.split_method(p[-3])[:1], p[-2], p[-5], shots, seed,
                            layout.split_method(p[-3])[1])
    elif len(p) >= 6 and p[-6] == "few_shot":
        shots, seed = _int(p[-4], "shots_"), _int(p[-1], "seed")
        if shots is None or seed is None:
            return None
        key = layout.RunKey("few_shot", f"shots_{shots}", layout.split_method(p[-3])[0], p[-2], p[-5], shots, seed,
                            layout.split_method(p[-3])[1])
    elif len(p) >= 5 and p[-5] == "zeroshot" and p[-3] in ("all", "base", "new"):
        trainer, tag = layout.split_method(p[-2])
        key = layout.RunKey("zeroshot", p[-3], trainer, p[-1], p[-4], tag=tag)
    if key is None:
        return None
    protocol, part = key.recorded()
    run = dict(dataset=key.dataset, shots=key.shots, trainer=key.trainer, config=key.config, seed=key.seed,
               tag=key.tag)
    found = [dict(run, protocol=protocol, part=part)]
    if (protocol, part) == ("xd", "source"):
        found.append(dict(run, protocol="dg", part="source"))
    return found


_LAYOUT_TOPS = {tuple(top.split("/")) for top in layout.FOLDERS.values()} | {("few_shot",), ("zeroshot",)}


def in_layout(parts: Sequence[str]) -> bool:
    """Whether a folder lies where the protocol layout puts run folders (under one of its top folders,
    at most a run folder's depth below it): such a folder that `locate` does not read (`seed1.bak`,
    a copy) is not a run of the layout and is left out, never counted in its place."""
    tail = list(parts)[-8:]
    return any(tuple(tail[i:i + len(top)]) == top for top in _LAYOUT_TOPS for i in range(len(tail)))


def log_accuracy(folder: Path) -> tuple[float, str] | None:
    """The last test accuracy printed in the newest of the folder's Dassl logs that has one."""
    logs = sorted((f for f in folder.iterdir() if f.is_file() and _LOG.match(f.name)),
                  key=lambda f: (f.name != "log.txt", f.name))  # log.txt, then log.txt-<timestamp> in time order
    for log in reversed(logs):
        found = _ACCURACY.findall(log.read_text(errors="replace"))
        if found:
            return float(found[-1]), log.name
    return None


_PART = {  # result.json "part" values -> the report's parts, per protocol
    "base2new": {"train": "base", "train_base": "base", "base": "base",
                 "test": "new", "test_new": "new", "new": "new"},
    "xd": {"train": "source", "source": "source", "test": "target", "target": "target"},
    "dg": {"train": "source", "source": "source", "test": "target", "target": "target"},
}


def _dataset(name: str) -> str:
    """A result's dataset as the report names it (the config stem): `Caltech101` -> `caltech101`."""
    return protocols.CONFIG_OF.get(name, name)


def from_result(result: dict, where: list[dict] | None) -> list[dict] | None:
    """What a run is, from its result.json; the path's reading (`where`) fills what it lacks.

    Results written since runs record `protocol`, `part`, `config_name` and `method` say it
    themselves; older folders are read from their path. Shots come from the result's `num_shots`
    when it is a training shot count: a folder name can lie ("shots_16" trained with 2). An
    evaluation run's own `num_shots` (-1 for an xd or dg target) says nothing about the model,
    so there the path's shots stand.
    """
    trainer = result.get("method") or result.get("trainer")
    protocol = result.get("protocol")
    shots = result.get("num_shots")
    if not isinstance(shots, int) or shots < 1:  # an evaluation run (NUM_SHOTS -1: all test images)
        shots = where[0]["shots"] if where else None  # ... of a model trained with the path's shots
    if protocol in protocols.PROTOCOLS and result.get("dataset"):
        dataset = _dataset(result["dataset"])
        part = str(result.get("part") or "")
        zero_shot = trainer == "ZeroshotCLIP"
        shots = None if zero_shot else shots
        run = dict(dataset=dataset, shots=shots, trainer=trainer,
                   config=result.get("config_name") or (where[0]["config"] if where else ""),
                   seed=None if zero_shot else _seed(result.get("seed")),
                   tag=result.get("tag") or (where[0]["tag"] if where else ""))
        if protocol == "few_shot":
            return [dict(run, protocol="few_shot", part=f"shots_{shots}")] if shots else None
        if protocol == "base2new":
            sub = result.get("subsample_classes")
            part = _PART["base2new"].get(part) or {"base": "base", "new": "new"}.get(sub)
            return [dict(run, protocol="base2new", part=part)] if part else None
        part = _PART[protocol].get(part) or ("source" if dataset == protocols.SOURCE else "target")
        if part == "source":
            return [dict(run, protocol="xd", part="source"), dict(run, protocol="dg", part="source")]
        return [dict(run, protocol="dg" if dataset in protocols.DG_TARGETS else "xd", part="target")]
    if where is None:  # outside the protocol layout (plain train.py): reported on its own
        if not trainer or not result.get("dataset"):
            return None
        return [dict(protocol="other", part="", trainer=trainer, tag=result.get("tag") or "",
                     config=result.get("config_name") or "", dataset=_dataset(result["dataset"]),
                     shots=result.get("num_shots") if isinstance(result.get("num_shots"), int) else None,
                     seed=_seed(result.get("seed")), classes=str(result.get("subsample_classes") or ""))]
    if shots is not None and trainer != "ZeroshotCLIP":
        where = [dict(w, shots=shots, part=f"shots_{shots}" if w["protocol"] == "few_shot" else w["part"])
                 for w in where]
    return where


def _seed(value) -> int | None:
    """A recorded seed; None for none (a negative SEED is Dassl's "no fixed seed")."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _accuracy(result) -> float:
    """result.json's accuracy, or ValueError saying why it is not a number."""
    value = result["metrics"]["accuracy"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"accuracy {value!r} is not a number")
    if not math.isfinite(value):
        raise ValueError(f"accuracy is {value!r}")
    return float(value)


def scan(root: str | Path, warn=None, unreadable: list | None = None,
         unrecognized: list | None = None) -> list[Record]:
    """Every finished run under `root`: result.json where there is one, else a log's accuracy.

    A result.json that does not parse, or whose accuracy is not a finite number, is not a result:
    it goes to `unreadable` as `(path, reason)` (and to `warn`), and the other runs are still read.
    A folder under the protocol layout's folders that is not one of its run folders (`seed1.bak`)
    goes to `unrecognized` as `(path, reason)`, and is not counted.
    """
    root = Path(root)
    records = []
    folders = {p.parent for p in root.rglob(RESULT_FILE)} | {p.parent for p in root.rglob("log.txt*")}
    for folder in sorted(folders):
        parts = folder.resolve().parts
        where = locate(parts)
        result_path = folder / RESULT_FILE
        unfinished = False
        if where is None and in_layout(parts) and (result_path.is_file() or log_accuracy(folder)):
            reason = "not a run folder of the protocol layout (a copy or a renamed folder?)"
            if unrecognized is not None:
                unrecognized.append((str(folder), reason))
            if warn:
                warn(f"left out {folder}: {reason}")
            continue
        if result_path.is_file():
            try:
                result = json.loads(result_path.read_text())
                accuracy, source = _accuracy(result), RESULT_FILE
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
                reason = f"{type(error).__name__}: {error}"
                if unreadable is not None:
                    unreadable.append((str(result_path), reason))
                if warn:
                    warn(f"unreadable {result_path}: {reason}")
                continue
            where = from_result(result, where)
            unfinished = result.get("training_finished") is False
            ident = result.get("identity") if isinstance(result.get("identity"), dict) else None
        else:
            ident = None
            if where is None:
                continue
            found = log_accuracy(folder)
            if found is None:  # training never finished: an interrupted run, not a result
                continue
            accuracy, source = found
        if where is None:
            continue
        records += [Record(accuracy=accuracy, source=source, path=str(folder), unfinished=unfinished,
                           identity=ident, **w) for w in where]
    return records


# -- statistics --------------------------------------------------------------------------------


@dataclass
class Cell:
    """The accuracies of one table cell, by seed, and the folder each came from."""

    by_seed: dict = field(default_factory=dict)
    unfinished: bool = False  # some seed's run did not finish training
    paths: dict = field(default_factory=dict)  # seed -> folder
    records: dict = field(default_factory=dict)  # seed -> the Record counted

    @property
    def n(self) -> int:
        return len(self.by_seed)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.by_seed.values()) if self.by_seed else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.by_seed.values()) if self.n >= 2 else None


def hm(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 2 * a * b / (a + b) if a + b else 0.0


def average(values: Iterable[float | None]) -> float | None:
    """Mean of the values, or None (a gap) if any is missing."""
    values = list(values)
    return None if not values or any(v is None for v in values) else statistics.fmean(values)


@dataclass(frozen=True)
class Group:
    """A method's row: trainer and tag (a named variant), at a number of training shots. `config` is
    the config it ran with; a method whose datasets used different configs (SEP's ImageNet and SUN397)
    is one group whose `configs` say which dataset used which."""

    protocol: str
    trainer: str
    config: str
    shots: int | None
    tag: str = ""
    configs: tuple = ()  # ((config, (dataset, ...)), ...) when the datasets used more than one config

    @property
    def method(self) -> str:
        return f"{self.trainer}{layout.TAG_MARK}{self.tag}" if self.tag else self.trainer

    @property
    def title(self) -> str:
        shots = "" if self.shots is None or self.protocol == "few_shot" else f", {self.shots} shots"
        mark = f" {protocols.UNRANKED_MARK}" if self.unranked else ""
        return f"{self.method} ({self.config}{shots}){mark}"

    @property
    def unranked(self) -> bool:
        """A method of its own protocol (PromptKD): listed after the ranked ones, with its note."""
        return self.trainer in protocols.UNRANKED

    def config_of(self, dataset: str) -> str:
        """The config `dataset` used in this group."""
        for config, datasets in self.configs:
            if dataset in datasets:
                return config
        return self.config

    def config_note(self) -> str | None:
        """Which config each dataset used, when more than one."""
        if not self.configs:
            return None
        used = "; ".join(f"{config}: {', '.join(datasets)}" for config, datasets in self.configs)
        return f"{self.method} used {len(self.configs)} configs: {used}."


def duplicate_warning(r: Record, kept: Record) -> str:
    """Both folders, and whether the two are the same run (`clipprompt.results.identity`)."""
    where = f"{r.protocol} {r.method} ({r.config}) {r.dataset} {r.part or r.classes}".rstrip()
    seed = "no seed" if r.seed is None else f"seed {r.seed}"
    if kept.identity is None or r.identity is None:
        same = "one of them records no identity (written before results recorded one)"
    else:
        differences = identity.differences(kept.identity, r.identity)
        same = (f"another configuration: {'; '.join(differences)}" if differences else "the same configuration")
    return (f"two results for {where}, {seed}: {kept.path} (counted) and {r.path} (left out), {same}; "
            "name variants with TAG= / --tag to keep them apart")


def group(records: Iterable[Record], warnings: list | None = None) -> dict[Group, dict[tuple[str, str], Cell]]:
    """protocol/method/shots -> (dataset, part) -> Cell.

    A method's runs with different configs make one group when no (dataset, part) has more than
    one config (SEP's base-to-new: ImageNet and SUN397 with one config, the rest with another); a
    config run on a dataset that another config ran too stays its own group. Two results for one
    cell and seed: the first is counted, and `warnings` names both folders."""
    by_config: dict[Group, dict[tuple[str, str], Cell]] = {}
    for r in records:
        if r.protocol == "other":
            continue
        shots = None if r.protocol == "few_shot" else r.shots
        cells = by_config.setdefault(Group(r.protocol, r.trainer, r.config, shots, r.tag), {})
        cell = cells.setdefault((r.dataset, r.part), Cell())
        if r.seed in cell.by_seed:
            if cell.paths[r.seed] != r.path and warnings is not None:
                warnings.append(duplicate_warning(r, cell.records[r.seed]))
            continue
        cell.by_seed[r.seed] = r.accuracy
        cell.paths[r.seed], cell.records[r.seed] = r.path, r
        cell.unfinished |= r.unfinished
    methods: dict[tuple, list[tuple[Group, dict]]] = {}
    for g, cells in sorted(by_config.items(), key=lambda kv: kv[0].config):
        buckets = methods.setdefault((g.protocol, g.trainer, g.tag, g.shots), [])
        for bucket in buckets:
            if not any(key in cells for _, c in bucket for key in c):
                bucket.append((g, cells))
                break
        else:
            buckets.append([(g, cells)])
    groups: dict[Group, dict[tuple[str, str], Cell]] = {}
    for (protocol, trainer, tag, shots), buckets in methods.items():
        for bucket in buckets:
            cells = {key: cell for _, c in bucket for key, cell in c.items()}
            if len(bucket) == 1:
                groups[bucket[0][0]] = cells
                continue
            configs = tuple((g.config, tuple(sorted({d for d, _ in c}, key=_dataset_order))) for g, c in bucket)
            name = " + ".join(g.config for g, _ in bucket)
            groups[Group(protocol, trainer, name, shots, tag, configs)] = cells
    return dict(sorted(groups.items(), key=lambda kv: (kv[0].protocol, kv[0].trainer, kv[0].tag, kv[0].config,
                                                       kv[0].shots or 0)))


def _dataset_order(name: str) -> tuple:
    known = (*protocols.BASE2NEW, *protocols.DG_TARGETS)
    return (known.index(name), "") if name in known else (len(known), name)


# -- tables ------------------------------------------------------------------------------------


@dataclass
class Value:
    """A number in a table: mean ± std over n of the table's seeds (std None for one seed); an
    average over part of its datasets says how many (`covered`, e.g. "4/11")."""

    mean: float | None
    std: float | None = None
    n: int | None = None
    seeds: tuple = ()
    unfinished: bool = False
    covered: str = ""


def _value(cell: Cell | None) -> Value:
    if cell is None or cell.n == 0:
        return Value(None)
    return Value(cell.mean, cell.std, cell.n, tuple(sorted(cell.by_seed, key=lambda s: (s is None, s))),
                 cell.unfinished)


def partial_average(values: Sequence[float | None]) -> Value:
    """The mean of the values there are, marked with how many of them (`avg 4/11`) when some are missing."""
    present = [v for v in values if v is not None]
    if not present:
        return Value(None)
    covered = "" if len(present) == len(values) else f"{len(present)}/{len(values)}"
    return Value(statistics.fmean(present), covered=covered)


def _hm_value(base: Value, new: Value) -> Value:
    covered = base.covered if base.covered == new.covered else \
        f"Base {base.covered or 'all'}, New {new.covered or 'all'}"
    return Value(hm(base.mean, new.mean), covered=covered if hm(base.mean, new.mean) is not None else "")


@dataclass
class Table:
    title: str
    protocol: str
    group: Group | None
    columns: list[str]  # first column is the row label
    rows: list[list]  # label (str), then Value or str per column
    seeds: int = 0  # seeds of the table's most complete cell: fewer is flagged
    row_groups: list = field(default_factory=list)  # per row, when rows are methods (xd, dg, compare)
    notes: list = field(default_factory=list)  # printed under the table (which config each dataset used)


def _datasets(expected: Sequence[str], present: Iterable[str]) -> list[str]:
    return list(expected) + sorted(set(present) - set(expected))


def _notes(groups: Iterable[Group]) -> list[str]:
    groups = list(groups)
    notes = [note for note in (g.config_note() for g in groups) if note]
    return notes + list(dict.fromkeys(protocols.unranked_note(g.trainer) for g in groups if g.unranked))


def _ranked_first(group: Group, value: Value) -> tuple:
    """The methods trained on labels only, best first; then those of their own protocol (not ranked)."""
    return (group.unranked, *_best_first(value))


def base2new_table(g: Group, cells: dict) -> Table:
    datasets = _datasets(protocols.BASE2NEW, (d for d, _ in cells))
    rows, bases, news = [], [], []
    for d in datasets:
        base, new = _value(cells.get((d, "base"))), _value(cells.get((d, "new")))
        rows.append([d, base, new, Value(hm(base.mean, new.mean))])
        if d in protocols.BASE2NEW:
            bases.append(base.mean)
            news.append(new.mean)
    b, n = partial_average(bases), partial_average(news)
    rows.append([f"Average ({len(protocols.BASE2NEW)})", b, n, _hm_value(b, n)])
    return Table(f"Base-to-new: {g.title}", "base2new", g, ["dataset", "Base", "New", "HM"], rows,
                 max((c.n for c in cells.values()), default=0), notes=_notes([g]))


def transfer_tables(protocol: str, groups: dict) -> list[Table]:
    targets = protocols.XD_TARGETS if protocol == "xd" else protocols.DG_TARGETS
    mine = {g: c for g, c in groups.items() if g.protocol == protocol}
    if not mine:
        return []
    extra = sorted({d for c in mine.values() for d, part in c if part == "target"} - set(targets))
    columns = ["method", f"{protocols.SOURCE} (source)", *targets, *extra, f"Average ({len(targets)})"]
    rows, row_groups = [], []
    for g, cells in mine.items():
        row_groups.append(g)
        values = [_value(cells.get((d, "target"))) for d in (*targets, *extra)]
        rows.append([g.title, _value(cells.get((protocols.SOURCE, "source"))), *values,
                     partial_average([v.mean for v in values[:len(targets)]])])
    order = sorted(range(len(rows)), key=lambda i: _ranked_first(row_groups[i], rows[i][-1]))
    rows, row_groups = [rows[i] for i in order], [row_groups[i] for i in order]
    name = "Cross-dataset transfer" if protocol == "xd" else "Domain generalization"
    seeds = max((c.n for cells in mine.values() for c in cells.values()), default=0)
    return [Table(f"{name} (trained on {protocols.SOURCE})", protocol, None, columns, rows, seeds, row_groups,
                  notes=_notes(row_groups))]


def few_shot_table(g: Group, cells: dict) -> Table:
    shots = sorted(set(protocols.SHOTS) | {int(p[len("shots_"):]) for _, p in cells})
    datasets = _datasets(protocols.FEW_SHOT, (d for d, _ in cells))
    rows = [[d, *(_value(cells.get((d, f"shots_{k}"))) for k in shots)] for d in datasets]
    in_average = [r for r in rows if r[0] in protocols.FEW_SHOT]
    rows.append([f"Average ({len(protocols.FEW_SHOT)})",
                 *(partial_average([r[i + 1].mean for r in in_average]) for i in range(len(shots)))])
    return Table(f"Few-shot: {g.title}", "few_shot", g, ["dataset", *(f"{k} shots" for k in shots)], rows,
                 max((c.n for c in cells.values()), default=0), notes=_notes([g]))


def _best_first(value: Value) -> tuple:
    """Complete averages first, best first; then partial ones; then gaps."""
    return (value.mean is None, bool(value.covered), -(value.mean or 0.0))


def base2new_summary(per_method: list[Table]) -> Table:
    """Every method of the output folder in one table: its 11-dataset averages, best HM first;
    an average over part of the datasets is shown, marked."""
    by_title = {t.group.title: t.group for t in per_method}
    rows = sorted(([t.group.title, *t.rows[-1][1:]] for t in per_method),
                  key=lambda r: _ranked_first(by_title[r[0]], r[3]))
    groups = [by_title[r[0]] for r in rows]
    return Table(f"Base-to-new, all methods: average over {len(protocols.BASE2NEW)} datasets, by HM",
                 "base2new_summary", None, ["method", "Base", "New", "HM"], rows,
                 row_groups=groups, notes=_notes(groups))


def few_shot_summary(per_method: list[Table]) -> Table:
    """Every method's few-shot average at each number of shots, best at the most shots first."""
    shots = sorted({c for t in per_method for c in t.columns[1:]}, key=lambda c: int(c.split()[0]))
    rows = []
    for t in per_method:
        average_row = dict(zip(t.columns[1:], t.rows[-1][1:]))
        rows.append([t.group.title, *(average_row.get(c, Value(None)) for c in shots)])
    by_title = {t.group.title: t.group for t in per_method}
    rows.sort(key=lambda r: _ranked_first(by_title[r[0]], r[-1]))
    groups = [by_title[r[0]] for r in rows]
    return Table(f"Few-shot, all methods: average over {len(protocols.FEW_SHOT)} datasets",
                 "few_shot_summary", None, ["method", *shots], rows, row_groups=groups, notes=_notes(groups))


def other_table(records: Iterable[Record], warnings: list | None = None) -> Table | None:
    """Runs outside the protocol layout (plain train.py): one row per method, dataset, config, class
    subset and shots, seeds averaged; results without a seed are each their own row."""
    cells: dict[tuple, Cell] = {}
    for r in records:
        if r.protocol != "other":
            continue
        key = (r.method, r.dataset, r.config, r.classes, r.shots, r.path if r.seed is None else None)
        cell = cells.setdefault(key, Cell())
        if r.seed in cell.by_seed:
            if warnings is not None:
                warnings.append(duplicate_warning(r, cell.records[r.seed]))
            continue
        cell.by_seed[r.seed], cell.paths[r.seed], cell.records[r.seed] = r.accuracy, r.path, r
    if not cells:
        return None
    rows, row_groups = [], []
    for (method, dataset, config, classes, shots, _), cell in sorted(cells.items(), key=lambda kv: str(kv[0])):
        trainer, tag = layout.split_method(method)
        row_groups.append(Group("other", trainer, config, shots, tag))
        seeds = ", ".join("–" if s is None else str(s) for s in sorted(cell.by_seed, key=lambda s: (s is None, s)))
        folders = ", ".join(sorted(set(cell.paths.values())))
        rows.append([method, dataset, config or GAP, classes or GAP, GAP if shots is None else str(shots),
                     _value(cell), seeds, folders])
    seeds = max(c.n for c in cells.values())
    return Table("Runs outside the protocol layout (by trainer, dataset and config)", "other", None,
                 ["method", "dataset", "config", "classes", "shots", "accuracy", "seeds", "folders"],
                 rows, seeds, row_groups)


def tables(records: Iterable[Record], protocol: str = "all", warnings: list | None = None) -> list[Table]:
    """The summary table of each protocol (every method, best first), then one table per method;
    with `protocol` all, the runs outside the protocol layout last."""
    records = list(records)
    groups = group(records, warnings)
    out: list[Table] = []
    for p in protocols.PROTOCOLS if protocol == "all" else [protocol]:
        if p == "base2new":
            mine = [base2new_table(g, c) for g, c in groups.items() if g.protocol == p]
            out += ([base2new_summary(mine)] if mine else []) + mine
        elif p == "few_shot":
            mine = [few_shot_table(g, c) for g, c in groups.items() if g.protocol == p]
            out += ([few_shot_summary(mine)] if mine else []) + mine
        else:
            out += transfer_tables(p, groups)
    if protocol == "all":
        other = other_table(records, warnings)
        out += [other] if other else []
    return out


# -- output ------------------------------------------------------------------------------------


def _cell(value, table_seeds: int) -> str:
    if isinstance(value, str):
        return value
    if value.mean is None:
        return GAP
    text = f"{value.mean:.2f}"
    if value.std is not None:
        text += f" ± {value.std:.2f}"
    if value.n is not None and value.n < table_seeds:
        text += f" ({value.n} seed{'s' if value.n > 1 else ''})"
    if value.covered:
        text += f" (avg {value.covered})"
    if value.unfinished:
        text += " " + UNFINISHED
    return text


def markdown(tables_: list[Table], records: list[Record], unreadable: Sequence = (),
             unrecognized: Sequence = (), warnings: Sequence = ()) -> str:
    out = []
    for t in tables_:
        out += [f"### {t.title}", "", "| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
        out += ["| " + " | ".join([row[0], *(_cell(v, t.seeds) for v in row[1:])]) + " |" for row in t.rows]
        if t.seeds > 1:
            out.append(f"\nMean ± sample std over {t.seeds} seeds; fewer seeds are marked; {GAP}: no run.")
        elif t.seeds == 1:
            out.append(f"\nOne seed per cell; {GAP}: no run.")
        if any(isinstance(v, Value) and v.covered for row in t.rows for v in row[1:]):
            out.append("avg k/N: an average over the k of its N datasets that have a number.")
        out += t.notes
        out.append("")
    unfinished = sorted({r.path for r in records if r.unfinished})
    if unfinished:
        out.append(f"{UNFINISHED} {len(unfinished)} run(s) evaluated before their training finished "
                   "(an intermediate epoch; result.json has \"training_finished\": false): " + ", ".join(unfinished))
    if unreadable:
        out.append(f"{len(unreadable)} unreadable result.json (not counted):")
        out += [f"- {path}: {reason}" for path, reason in unreadable]
    if unrecognized:
        out.append(f"{len(unrecognized)} folder(s) not counted, not run folders of the protocol layout:")
        out += [f"- {path}: {reason}" for path, reason in unrecognized]
    if warnings:
        out.append(f"{len(warnings)} warning(s):")
        out += [f"- {w}" for w in warnings]
    logs = [r for r in records if r.source != RESULT_FILE]
    if logs:
        out.append(f"{len(logs)} run(s) read from Dassl logs (one decimal), having no result.json: "
                   + ", ".join(sorted({r.path for r in logs})))
    return "\n".join(out).rstrip() + "\n"


def to_csv(tables_: list[Table]) -> str:
    """One tidy CSV: one line per table cell, the numbers at full precision, gaps empty.

    `dataset` is the row's dataset (or the column's, in the cross-dataset and DG tables, whose rows
    are methods); `measure` is what the number is (Base, New, HM, accuracy, "4 shots", ...).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", "trainer", "config", "shots", "dataset", "measure",
                     "mean", "std", "n_seeds", "seeds", "text"])
    fmt = lambda x: "" if x is None else repr(x)  # noqa: E731
    for t in tables_:
        for i, row in enumerate(t.rows):
            g = t.row_groups[i] if t.row_groups else t.group
            for column, value in zip(t.columns[1:], row[1:]):
                if t.protocol == "other":
                    if column != "accuracy":
                        continue
                    dataset, measure = row[1], f"accuracy ({row[3]} classes)"
                elif t.protocol in ("xd", "dg"):
                    dataset, measure = column.replace(" (source)", ""), "accuracy"
                elif t.protocol == "base2new_summary":
                    dataset, measure = f"Average ({len(protocols.BASE2NEW)})", column
                elif t.protocol == "few_shot_summary":
                    dataset, measure = f"Average ({len(protocols.FEW_SHOT)})", column
                else:
                    dataset, measure = row[0], column
                shots = "" if g.shots is None else g.shots
                head = [t.protocol, g.method, g.config_of(dataset), shots, dataset, measure]
                if isinstance(value, str):
                    writer.writerow([*head, "", "", "", "", value])
                else:
                    seeds = " ".join("" if s is None else str(s) for s in value.seeds)
                    writer.writerow([*head, fmt(value.mean), fmt(value.std),
                                     "" if value.n is None else value.n, seeds, ""])
    return buffer.getvalue()


def _asked(protocol: str) -> tuple[str, ...]:
    return protocols.PROTOCOLS if protocol == "all" else (protocol,)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipprompt.report", description=__doc__.split("\n\n")[2])
    parser.add_argument("output_dir", help="the OUTPUT folder of the protocol scripts (or any folder above run folders)")
    parser.add_argument("--protocol", choices=[*protocols.PROTOCOLS, "all"], default="all")
    parser.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    parser.add_argument("--compare", action="store_true",
                        help="add ours beside the published numbers, per dataset and protocol, the difference and whether it lies within 2 std of our seeds")
    parser.add_argument("--cost", action="store_true",
                        help="print what each method cost per protocol instead: wall times, images/s, peak memory, trainable parameters")
    parser.add_argument("--plot", metavar="DIR", help="also write the figures (PNG, SVG and PDF) to DIR, with the "
                        "published numbers when --compare is given; needs matplotlib")
    args = parser.parse_args(argv)
    root = Path(args.output_dir)
    if not root.is_dir():
        print(f"error: {root} is not a folder", file=sys.stderr)
        return 2
    if args.cost:  # clipprompt.results.cost_table
        from . import cost_table

        costs = cost_table.collect(root, args.protocol, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
        if not costs:
            print(f"No result.json of protocol {args.protocol} under {root}", file=sys.stderr)
            return 1
        sys.stdout.write(cost_table.markdown(costs) if args.format == "markdown" else cost_table.to_csv(costs))
        return 0
    unreadable, unrecognized, warnings = [], [], []
    records = scan(root, unreadable=unreadable, unrecognized=unrecognized)
    found = tables(records, args.protocol, warnings)
    for path, reason in unreadable:
        print(f"warning: unreadable {path} ({reason}); not counted", file=sys.stderr)
    for path, reason in unrecognized:
        print(f"warning: left out {path}: {reason}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not found:
        print(f"No finished runs of protocol {args.protocol} under {root}", file=sys.stderr)
        return 1
    if args.compare:  # ours beside the published numbers, per dataset (clipprompt.results.compare)
        from . import compare

        ours = compare.from_records(records, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
        if args.format == "csv":  # the comparison's own CSV, one line per number
            csv.writer(sys.stdout, lineterminator="\n").writerows(compare.csv_rows(ours, _asked(args.protocol)))
            return 0
    sys.stdout.write(markdown(found, records, unreadable, unrecognized, warnings) if args.format == "markdown"
                     else to_csv(found))
    if args.compare:
        sys.stdout.write("\n" + compare.markdown(ours, _asked(args.protocol)))
    if args.plot:
        from . import figures

        try:
            data = figures.from_tables(found, reference=tables(records, "xd"),
                                       published={p: published_numbers.numbers(p) for p in protocols.PROTOCOLS} if args.compare else None)
            figs = figures.figures(data)
        except figures.PlotUnavailable as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        try:
            written = figures.save(figs, args.plot)
        except OSError as error:
            print(f"error: cannot write the figures to {args.plot}: {error.strerror or error}", file=sys.stderr)
            return 2
        for path in written:
            print(f"figure: {path}", file=sys.stderr)
    return 0

