"""The report's figures, for a paper (matplotlib, an optional extra).

    python -m clipprompt.report OUTPUT --plot DIR [--compare]     # pip install -e ".[plot]"

One figure per protocol that has runs, each saved as PNG, SVG and PDF:

- ``base2new``: three panels (Base, New, HM) on one y-range, one group of bars per dataset and
  one for the 11-dataset average (set apart: a gap, a dashed line, a shaded group);
- ``few_shot``: accuracy against shots (log scale), one panel per dataset and one for the
  average, one line per method with a band of ± the seeds' std, zero-shot CLIP as a dashed
  horizontal line where its results exist; each panel spans at least 10 points, so a 1-point
  gap does not look like a cliff;
- ``xd`` and ``dg``: one group of bars for the source (ImageNet, shaded grey), one per target
  and one for the target average (shaded yellow), each set apart by a gap and a dashed line.

Each method has one colour and one marker in every figure (:func:`style`: a fixed table for this
project's trainers, a hash of the label for others) and is labelled by its trainer's name plus
its tag, never its config. Methods are listed in a fixed order, never by score. Error bars and
bands are ± the sample std over seeds. A slot without a number is "n/a" on the figure and the
figure's footnote counts them: nothing reads as 0 %. Legends sit above the panels, outside the
data. Published numbers are drawn (black-edged diamonds in the method's colour) only when the
caller passes them (``--compare``), for every drawn method that has one.

The input is :class:`FigureData` (per method: per dataset and measure a :class:`Stat`); the
report's tables become that in one place, :func:`from_tables`. The figures are
``matplotlib.figure.Figure`` objects (no pyplot, no display): :func:`figures` returns them for a
test to inspect before :func:`save` writes them. matplotlib is imported only here, on demand.
"""
from __future__ import annotations

import math
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from . import protocols

MISSING = 'matplotlib is not installed: pip install -e ".[plot]"'
AVERAGE = "average"  # the dataset key of the average column
NA = "n/a"
FORMATS = ("png", "svg", "pdf")
PNG_DPI = 200

#: This project's trainers, in the order figures list them: display name, colour, marker.
TRAINERS = {
    "ZeroshotCLIP": ("Zero-shot CLIP", "#7f7f7f", "s"),
    "CoOp": ("CoOp", "#1f77b4", "o"),
    "CoCoOp": ("CoCoOp", "#ff7f0e", "v"),
    "KgCoOp": ("KgCoOp", "#2ca02c", "^"),
    "ProGrad": ("ProGrad", "#bcbd22", "<"),
    "TCP": ("TCP", "#e377c2", "X"),
    "VPT": ("VPT", "#393b79", ">"),
    "IVLP": ("IVLP", "#637939", "p"),
    "MaPLe": ("MaPLe", "#9467bd", "D"),
    "PromptSRC": ("PromptSRC", "#8c564b", "P"),
    "MMA": ("MMA", "#843c39", "H"),
    "MMRL": ("MMRL", "#7b4173", "d"),
    "MMRLpp": ("MMRL++", "#ce6dbd", "d"),
    "CoPrompt": ("CoPrompt", "#8c6d31", "8"),
    "HiCroPL": ("HiCroPL", "#1b9e77", "8"),
    "CoOp_DePT": ("CoOp+DePT", "#6baed6", "o"),
    "CoCoOp_DePT": ("CoCoOp+DePT", "#fdae6b", "v"),
    "KgCoOp_DePT": ("KgCoOp+DePT", "#74c476", "^"),
    "MaPLe_DePT": ("MaPLe+DePT", "#9e9ac8", "D"),
    "MPL": ("MPL", "#17becf", "h"),
    "SEP": ("SEP", "#d62728", "*"),
    "PromptKD": ("PromptKD", "#b15928", "P"),
}
#: Any other method (another trainer, or a tagged variant): a colour and marker from a hash of its label.
_OTHER_COLOURS = ("#6b6ecf", "#b5cf6b", "#e7969c", "#de9ed6", "#9c9ede", "#cedb9c", "#3182bd",
                  "#e6550d", "#31a354", "#756bb1", "#636363", "#ad494a")  # none of TRAINERS' (a test checks)
_OTHER_MARKERS = ("o", "s", "^", "v", "D", "<", ">", "p", "h", "P", "X")

_SOURCE_SHADE = "#ececec"
_AVERAGE_SHADE = "#fbf0d0"
_GAP = 0.6  # extra space before the average group (and after the source group)
_RC = {  # sizes for a figure printed at a paper's text width (7 in)
    "font.size": 7, "axes.titlesize": 8, "axes.labelsize": 7, "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5, "legend.fontsize": 7, "figure.titlesize": 9,
    "axes.spines.top": False, "axes.spines.right": False,
    "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType in the PDF, as publishers ask
    "svg.fonttype": "none",  # text stays text in the SVG
}


class PlotUnavailable(RuntimeError):
    """--plot was asked for but matplotlib cannot be imported."""


# -- input -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """What a figure draws one series of: a trainer and, for variants, a tag."""

    trainer: str
    tag: str = ""

    @property
    def label(self) -> str:
        name = TRAINERS[self.trainer][0] if self.trainer in TRAINERS else self.trainer
        mark = f" {protocols.UNRANKED_MARK}" if self.trainer in protocols.UNRANKED else ""
        return (f"{name} ({self.tag})" if self.tag else name) + mark


@dataclass(frozen=True)
class Stat:
    """A number to draw: the mean over `n` seeds and their sample std (None under two seeds).

    `n` is 0 for a number that is not a mean over seeds (an HM, an average over datasets, a
    zero-shot evaluation): it is never flagged as having fewer seeds than the others."""

    mean: float
    std: float | None = None
    n: int = 0
    covered: str = ""  # an average over part of its datasets: how many ("4/11"), written beside it


@dataclass
class FigureData:
    """One protocol's numbers, as a figure needs them.

    `datasets`: dataset keys in column order (config stems; for xd and dg the source first),
    ending with AVERAGE. `measures`: base2new "Base", "New", "HM"; few_shot the shots (ints);
    xd and dg "accuracy". `results[method][(dataset, measure)]` is a Stat; a key that is absent
    is n/a. `published` is None unless asked for (--compare). `reference`: zero-shot CLIP per
    dataset key (few_shot's reference line).
    """

    protocol: str
    datasets: tuple
    measures: tuple
    results: dict
    published: dict | None = None
    reference: dict = field(default_factory=dict)


def style(method: Method) -> tuple[str, str]:
    """(colour, marker) of a method: the same in every figure, whatever else the figure shows."""
    if not method.tag and method.trainer in TRAINERS:
        return TRAINERS[method.trainer][1:]
    key = zlib.crc32(method.label.encode())
    return _OTHER_COLOURS[key % len(_OTHER_COLOURS)], _OTHER_MARKERS[(key // 97) % len(_OTHER_MARKERS)]


def ordered(methods) -> list[Method]:
    """This project's trainers in TRAINERS' order (each untagged first), then the others by label."""
    known = list(TRAINERS)
    return sorted(methods, key=lambda m: (m.trainer in protocols.UNRANKED,  # a protocol of its own: apart, last
                                          known.index(m.trainer) if m.trainer in known else len(known),
                                          m.trainer, m.tag))


def dataset_label(data: FigureData, dataset: str) -> str:
    if dataset == AVERAGE:
        n = len(data.datasets) - 1 - (data.protocol in ("xd", "dg"))
        return f"Average ({n})"
    name = protocols.display_name(dataset)
    return f"{name} (source)" if data.protocol in ("xd", "dg") and dataset == protocols.SOURCE else name


# -- the report's tables -> FigureData ---------------------------------------------------------


def _stat(value) -> Stat | None:
    mean = getattr(value, "mean", None)
    if mean is None:
        return None
    seeds = getattr(value, "seeds", ())
    seeded = bool(seeds) and any(s is not None for s in seeds)
    return Stat(float(mean), getattr(value, "std", None), (getattr(value, "n", None) or 0) if seeded else 0,
                getattr(value, "covered", "") or "")


def _methods(groups: Sequence) -> dict:
    """Group -> Method: the group's tag; groups that would share a label are told apart by config."""
    methods = {g: Method(g.trainer, getattr(g, "tag", "") or "") for g in groups}
    labels = [m.label for m in methods.values()]
    for g, m in methods.items():
        if labels.count(m.label) > 1:
            shots = "" if g.shots is None else f", {g.shots} shots"
            methods[g] = Method(m.trainer, ", ".join(filter(None, (m.tag, f"{g.config}{shots}"))))
    return methods


def _published(numbers: Sequence, methods) -> dict:
    """Method -> {(dataset, measure): published number}, per dataset and on average, from a protocol's
    published numbers (`published_numbers.numbers`) of each method's trainer."""
    measure = {"base": "Base", "new": "New", "hm": "HM", "accuracy": "accuracy"}
    out: dict = {}
    for n in numbers:
        if n.value is None:
            continue
        key = measure.get(n.metric) or (int(n.metric[len("shots_"):]) if n.metric.startswith("shots_") else None)
        for m in methods:
            if key is not None and n.trainer == m.trainer:
                out.setdefault(m, {})[(n.dataset, key)] = n.value
    return out


def _per_dataset(tables: Sequence, expected: Sequence[str], measure) -> tuple[tuple, dict]:
    """(dataset keys, Method -> cells) of per-method tables whose rows are datasets, then the average
    (base2new, few_shot); `measure` turns a column name into the measure key."""
    methods = _methods([t.group for t in tables])
    results: dict = {}
    for t in tables:
        cells = results.setdefault(methods[t.group], {})
        for row in t.rows:
            key = AVERAGE if row is t.rows[-1] else row[0]
            for column, value in zip(t.columns[1:], row[1:]):
                if _stat(value):
                    cells[(key, measure(column))] = _stat(value)
    others = sorted({r[0] for t in tables for r in t.rows[:-1]} - set(expected))
    return (*expected, *others, AVERAGE), results


def from_tables(tables: Sequence, reference: Sequence = (), published: Mapping | None = None) -> list[FigureData]:
    """The report's tables (`clipprompt.results.report.tables`) as figure input.

    `reference`: tables that may hold zero-shot CLIP's xd row (its per-dataset accuracy on all
    classes: few-shot's reference line). `published`: protocol -> its published numbers
    (`published_numbers.numbers`), only with --compare.
    """
    out = []
    base2new = [t for t in tables if t.protocol == "base2new" and t.group is not None]
    if base2new:
        datasets, results = _per_dataset(base2new, protocols.BASE2NEW, str)
        for cells in results.values():
            for d in datasets:
                base, new, hm = (cells.get((d, m)) for m in ("Base", "New", "HM"))
                if hm and base and new and base.n and new.n:  # an HM rests on the seeds of its Base and New
                    cells[(d, "HM")] = Stat(hm.mean, None, min(base.n, new.n))
        out.append(FigureData("base2new", datasets, ("Base", "New", "HM"), results))
    few_shot = [t for t in tables if t.protocol == "few_shot" and t.group is not None]
    if few_shot:
        shots = lambda column: int(column.split()[0])  # noqa: E731  "4 shots" -> 4
        datasets, results = _per_dataset(few_shot, protocols.FEW_SHOT, shots)
        measures = tuple(sorted({shots(c) for t in few_shot for c in t.columns[1:]}))
        out.append(FigureData("few_shot", datasets, measures, results, reference=_zero_shot(reference)))
    for t in tables:
        if t.protocol in ("xd", "dg"):
            methods = _methods(t.row_groups)
            datasets = (*(c.replace(" (source)", "") for c in t.columns[1:-1]), AVERAGE)
            results = {methods[g]: {(d, "accuracy"): _stat(v) for d, v in zip(datasets, row[1:]) if _stat(v)}
                       for g, row in zip(t.row_groups, t.rows)}
            out.append(FigureData(t.protocol, datasets, ("accuracy",), results))
    if published is not None:
        for data in out:
            data.published = _published(published.get(data.protocol, ()), data.results)
    return out


def _zero_shot(tables: Sequence) -> dict:
    """Zero-shot CLIP's accuracy on all classes per dataset (and their average), from an xd table."""
    for t in tables:
        if t.protocol != "xd":
            continue
        for g, row in zip(t.row_groups, t.rows):
            if g.trainer == "ZeroshotCLIP":
                datasets = [c.replace(" (source)", "") for c in t.columns[1:-1]]
                found = {d: v.mean for d, v in zip(datasets, row[1:]) if getattr(v, "mean", None) is not None}
                if all(d in found for d in protocols.FEW_SHOT):
                    found[AVERAGE] = sum(found[d] for d in protocols.FEW_SHOT) / len(protocols.FEW_SHOT)
                return found
    return {}


# -- drawing -----------------------------------------------------------------------------------


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotUnavailable(MISSING) from error
    return matplotlib, Figure


def _y_range(values, min_span: float = 10.0) -> tuple[float, float]:
    """A y-range that holds every value, on multiples of 5, at least `min_span` points, within 0-100."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 100.0
    low = max(0.0, math.floor((min(finite) - 1) / 5) * 5)
    high = min(100.0, math.ceil((max(finite) + 1) / 5) * 5)
    if high - low < min_span:
        middle = (low + high) / 2
        low, high = middle - min_span / 2, middle + min_span / 2
        low, high = (0.0, min_span) if low < 0 else (100 - min_span, 100.0) if high > 100 else (low, high)
        low, high = math.floor(low / 5) * 5, math.ceil(high / 5) * 5
    return float(low), float(high)


def _spread(stat: Stat | None) -> list[float]:
    if stat is None:
        return []
    std = stat.std or 0.0
    return [stat.mean - std, stat.mean + std]


def _most_seeds(data: FigureData) -> int:
    return max((s.n for cells in data.results.values() for s in cells.values()), default=0)


def _fewer(stat: Stat | None, most: int) -> bool:
    """A mean over fewer seeds than the figure's others (hatched bars, hollow markers)."""
    return stat is not None and 0 < stat.n < most


def _positions(data: FigureData) -> list[float]:
    """x of each dataset group: the source (xd, dg) and the average set apart by a gap."""
    xs, x = [], 0.0
    for i, d in enumerate(data.datasets):
        if d == AVERAGE or (i == 1 and data.protocol in ("xd", "dg")):
            x += _GAP
        xs.append(x)
        x += 1
    return xs


def _set_apart(ax, data: FigureData, xs: Sequence[float]) -> None:
    """Shade the source and the average groups and draw a dashed line between them and the targets."""
    for i, d in enumerate(data.datasets):
        source = data.protocol in ("xd", "dg") and i == 0
        if d == AVERAGE or source:
            ax.axvspan(xs[i] - 0.5, xs[i] + 0.5, color=_AVERAGE_SHADE if d == AVERAGE else _SOURCE_SHADE,
                       zorder=0, linewidth=0)
            edge = xs[i] - 0.5 - _GAP / 2 if d == AVERAGE else xs[i] + 0.5 + _GAP / 2
            ax.axvline(edge, color="0.55", linestyle="--", linewidth=0.7, zorder=0.5)


def _na(ax, x: float, rotation: int = 90, size: float = 5.5):
    """The visible "n/a" of a slot without a number, at the bottom of the axes."""
    return ax.text(x, 0.02, NA, transform=ax.get_xaxis_transform(), rotation=rotation, ha="center",
                   va="bottom", fontsize=size, color="0.3", zorder=5)


def _published_marker(ax, x: float, value: float, colour: str, method: Method) -> None:
    ax.plot([x], [value], marker="D", markersize=3.5, markerfacecolor=colour, markeredgecolor="black",
            markeredgewidth=0.7, linestyle="none", zorder=4, label=f"published {method.label}")


class _Count:
    """What a figure's footnote reports: slots without a number, all slots, means over fewer seeds."""

    def __init__(self):
        self.missing = self.slots = self.fewer = self.partial = 0


def _covered(ax, x: float, s: Stat, count: _Count) -> None:
    """Beside an average over part of its datasets, how many it covers (never a silent full-looking mean)."""
    if s is not None and s.covered:
        count.partial += 1
        ax.annotate(s.covered, (x, s.mean), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                    rotation=90, fontsize=5.5, color="0.25", zorder=5)


def _bars(ax, data: FigureData, measure, methods: Sequence[Method], xs: Sequence[float], count: _Count) -> None:
    """One bar per method in each dataset group, ± the seeds' std; "n/a" where a method has no number."""
    width = 0.84 / max(1, len(methods))
    most = _most_seeds(data)
    empty = [not any((d, measure) in data.results.get(m, {}) for m in methods) for d in data.datasets]
    for j, x in enumerate(xs):
        if empty[j]:
            _na(ax, x, rotation=0, size=6.5)  # a whole group: one n/a, centred
    for i, m in enumerate(methods):
        colour, _ = style(m)
        offset = (i - (len(methods) - 1) / 2) * width
        stats = [data.results.get(m, {}).get((d, measure)) for d in data.datasets]
        bar_xs = [x + offset for x in xs]
        errors = [s.std if s and s.std is not None else math.nan for s in stats]
        has_error = any(math.isfinite(e) for e in errors)
        bars = ax.bar(bar_xs, [s.mean if s else math.nan for s in stats], width, yerr=errors if has_error else None,
                      color=colour, label=m.label, linewidth=0, zorder=2,
                      error_kw=dict(elinewidth=0.6, capsize=1.2, capthick=0.6, ecolor="black"))
        for j, (x, s, bar) in enumerate(zip(bar_xs, stats, bars.patches)):
            count.slots += 1
            if s is None:
                count.missing += 1
                if not empty[j]:
                    _na(ax, x)
            elif _fewer(s, most):
                bar.set_hatch("/////")
                bar.set_edgecolor("white")
                count.fewer += 1
            _covered(ax, x, s, count)
            value = (data.published or {}).get(m, {}).get((data.datasets[j], measure))
            if value is not None:
                _published_marker(ax, x, value, colour, m)
    ax.set_xticks(xs, [dataset_label(data, d) for d in data.datasets], rotation=40, ha="right",
                  rotation_mode="anchor")
    ax.set_xlim(xs[0] - 0.6, xs[-1] + 0.6)
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", linewidth=0.4, color="0.85", zorder=0)
    ax.set_axisbelow(True)


def _legend(fig, data: FigureData, methods: Sequence[Method], lines: bool, ncol: int, title: str, fewer: bool):
    """The figure's legend above its panels (outside every axes): methods, then the references.

    The figure's title is the legend's title: constrained layout stacks an outside legend over
    the panels but not under a suptitle."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for m in methods:
        colour, marker = style(m)
        handles.append(Line2D([], [], color=colour, marker=marker, markersize=4, linewidth=1.2, label=m.label)
                       if lines else Patch(facecolor=colour, label=m.label))
    if data.reference and lines:
        handles.append(Line2D([], [], color=TRAINERS["ZeroshotCLIP"][1], linestyle="--", linewidth=1,
                              label="Zero-shot CLIP (reference)"))
    if fewer:
        handles.append(Line2D([], [], color="0.3", marker="o", markersize=7, markerfacecolor="none", linestyle="none",
                              markeredgewidth=0.8, label="fewer seeds") if lines else
                       Patch(facecolor="0.45", edgecolor="white", hatch="/////", label="fewer seeds"))
    if data.published and any(data.published.get(m) for m in methods):
        handles.append(Line2D([], [], marker="D", markersize=4, markerfacecolor="white", markeredgecolor="black",
                              linestyle="none", label="published"))
    rows = math.ceil(len(handles) / max(1, ncol))
    return fig.legend(handles=handles, loc="outside upper center", ncol=math.ceil(len(handles) / rows), frameon=False,
                      handlelength=1.6, columnspacing=1.2, title=title,
                      title_fontproperties={"weight": "bold", "size": _RC["figure.titlesize"]})


def _footnote(fig, width: float, count: _Count, what: str, explained: str, fewer: str,
              methods: Sequence[Method] = ()) -> None:
    """Under the panels: what the marks mean, which methods are not ranked, how many slots have no number."""
    notes = [explained]
    notes += list(dict.fromkeys(protocols.unranked_note(m.trainer).rstrip(".") for m in methods
                                if m.trainer in protocols.UNRANKED))
    if count.fewer:
        notes.append(f"{fewer.capitalize()}: fewer seeds than the others ({count.fewer} {what})")
    if count.partial:
        notes.append(f"k/N: an average over the k of N datasets that have runs ({count.partial} {what})")
    notes.append(f"{NA}: no run ({count.missing} of {count.slots} {what})" if count.missing
                 else f"Every one of the {count.slots} {what} has a run")
    text = textwrap.fill(". ".join(notes) + ".", width=int(width * 19))
    fig.supxlabel(text, fontsize=6.5, color="0.25")


def bar_figure(data: FigureData, Figure):
    """base2new (Base, New, HM panels), xd or dg: grouped bars, one per method, ± the seeds' std."""
    from matplotlib.ticker import MaxNLocator

    methods = ordered(data.results)
    xs = _positions(data)
    panels = data.measures
    # room for each group's rotated name, and about 1/16 in per bar; at most a paper's text width (7 in)
    width = min(7.0, max(3.5, 0.7 + len(data.datasets) * max(0.42, 0.065 * len(methods))))
    fig = Figure(figsize=(width, 1.5 + 2.0 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, sharey=True, squeeze=False).ravel()
    count = _Count()
    for ax, measure in zip(axes, panels):
        _set_apart(ax, data, xs)
        _bars(ax, data, measure, methods, xs, count)
        if len(panels) > 1:
            ax.set_title(measure, loc="left", fontweight="bold")
    for ax in axes[:-1]:
        ax.tick_params(axis="x", labelbottom=False)
    values = [v for m in methods for s in data.results[m].values() for v in _spread(s)]
    values += [v for m in methods for v in (data.published or {}).get(m, {}).values()]
    axes[0].set_ylim(*_y_range(values))
    axes[0].yaxis.set_major_locator(MaxNLocator(steps=[1, 2, 5, 10], integer=True))
    title = {"base2new": "Base-to-new generalization",
             "xd": f"Cross-dataset transfer (trained on {protocols.display_name(protocols.SOURCE)})",
             "dg": f"Domain generalization (trained on {protocols.display_name(protocols.SOURCE)})"}
    _legend(fig, data, methods, lines=False, ncol=max(1, int((width - 0.3) / 0.7)),
            title=title.get(data.protocol, data.protocol), fewer=count.fewer > 0)
    derived = "one run, an HM or an average" if data.protocol == "base2new" else "one run or an average"
    _footnote(fig, width, count, "bars", f"Bars: mean over seeds; error bars: ± std over seeds (none for {derived})",
              "hatched", methods)
    return fig


def _few_shot_na(ax, data: FigureData, dataset: str, methods: Sequence[Method]) -> None:
    """A few-shot panel's n/a: centred when it has no point at all; else "n/a" at each shot without a
    point, and the methods that miss shots others have, named in the corner."""
    shots = data.measures
    has = {k: [m for m in methods if (dataset, k) in data.results[m]] for k in shots}
    if not any(has.values()):
        ax.text(0.5, 0.5, NA, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.3")
        return
    for k in shots:
        if not has[k]:
            _na(ax, k, rotation=0)
    partial = {m: [k for k in shots if has[k] and m not in has[k]] for m in methods}
    partial = {m: ks for m, ks in partial.items() if ks}
    if not partial:
        return
    lines = [m.label + ("" if len(ks) == sum(bool(has[k]) for k in shots) else " at " + ", ".join(map(str, ks)))
             for m, ks in partial.items()]
    text = ", ".join(lines) if len(lines) <= 2 else f"{len(lines)} of {len(methods)} methods"
    ax.text(0.98, 0.1, f"{NA}: {text}", transform=ax.transAxes, ha="right", va="bottom", fontsize=5.5, color="0.3")


def few_shot_figure(data: FigureData, Figure):
    """Accuracy against shots: one panel per dataset and the average, one line per method with a ± std band."""
    from matplotlib.ticker import MaxNLocator

    methods = ordered(data.results)
    most = _most_seeds(data)
    cols = 4
    rows = math.ceil(len(data.datasets) / cols)
    fig = Figure(figsize=(7.0, 1.0 + 1.75 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    shots = list(data.measures)
    count = _Count()
    for ax, d in zip(axes, data.datasets):
        drawn = []
        panel_partial: set = set()  # averages over part of the datasets: said once per panel, not per point
        for m in methods:
            colour, marker = style(m)
            stats = [data.results[m].get((d, k)) for k in shots]
            count.slots += len(shots)
            count.missing += sum(s is None for s in stats)
            present = [(k, s) for k, s in zip(shots, stats) if s is not None]
            if not present:
                continue
            ks = [k for k, _ in present]  # a line through the shots that have a number
            ax.plot(ks, [s.mean for _, s in present], color=colour, marker=marker, markersize=3, linewidth=1,
                    label=m.label, zorder=3)
            fewer = [(k, s) for k, s in present if _fewer(s, most)]
            count.fewer += len(fewer)
            if fewer:
                ax.plot([k for k, _ in fewer], [s.mean for _, s in fewer], color=colour, marker="o", markersize=7,
                        markerfacecolor="none", markeredgewidth=0.8, linestyle="none", zorder=3.5,
                        label="_fewer seeds")  # a ring around the point
            if any(s.std for _, s in present):
                ax.fill_between(ks, [s.mean - (s.std or 0) for _, s in present],
                                [s.mean + (s.std or 0) for _, s in present],
                                color=colour, alpha=0.18, linewidth=0, zorder=2)
            drawn += [v for _, s in present for v in _spread(s)]
            partial = [s.covered for _, s in present if s.covered]
            count.partial += len(partial)
            panel_partial.update(partial)
            for k in shots:
                value = (data.published or {}).get(m, {}).get((d, k))
                if value is not None:
                    _published_marker(ax, k, value, colour, m)
                    drawn.append(value)
        if d in data.reference:
            ax.axhline(data.reference[d], color=TRAINERS["ZeroshotCLIP"][1], linestyle="--", linewidth=1,
                       zorder=2.5, label="Zero-shot CLIP (reference)")
            drawn.append(data.reference[d])
        _few_shot_na(ax, data, d, methods)
        if panel_partial:
            ax.text(0.03, 0.96, f"over {', '.join(sorted(panel_partial))} datasets", transform=ax.transAxes,
                    ha="left", va="top", fontsize=6.5, color="0.25")  # top left: the lines rise to the right
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.minorticks_off()
        ax.set_xlim(shots[0] / 1.3, shots[-1] * 1.3)
        ax.set_ylim(*_y_range(drawn))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10], integer=True))
        ax.set_title(dataset_label(data, d), fontweight="bold" if d == AVERAGE else "normal")
        ax.grid(linewidth=0.4, color="0.88", zorder=0)
        if d == AVERAGE:
            ax.set_facecolor(_AVERAGE_SHADE)
    for ax in axes[len(data.datasets):]:
        ax.set_visible(False)
    for i, ax in enumerate(axes[:len(data.datasets)]):
        if i % cols == 0:
            ax.set_ylabel("accuracy (%)")
        if i + cols >= len(data.datasets):
            ax.set_xlabel("shots per class")
    _legend(fig, data, methods, lines=True, ncol=5, title="Few-shot learning", fewer=count.fewer > 0)
    _footnote(fig, 7.0, count, "points", "Lines: mean over seeds; bands: ± std over seeds "
              "(none for one run or the average)", "ringed points", methods)
    return fig


def figures(data: Sequence[FigureData]) -> dict:
    """name -> matplotlib Figure, one per protocol in `data`."""
    matplotlib, Figure = _matplotlib()
    out = {}
    with matplotlib.rc_context(_RC):
        for d in data:
            if d.results:
                out[d.protocol] = (few_shot_figure if d.protocol == "few_shot" else bar_figure)(d, Figure)
    return out


def save(figs: dict, folder: str | Path) -> list[Path]:
    """Write each figure as `<name>.png`, `.svg` and `.pdf` in `folder`; the paths written."""
    from ..fileio import atomic_write

    matplotlib, _ = _matplotlib()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context(_RC):
        for name, fig in figs.items():
            for ext in FORMATS:
                path = folder / f"{name}.{ext}"
                atomic_write(path, lambda tmp, fig=fig, ext=ext: fig.savefig(tmp, format=ext, dpi=PNG_DPI))
                written.append(path)
    return written
