"""The report's figures, drawn from its tables (matplotlib, an optional extra).

    python -m clipprompt.report OUTPUT --plot DIR      # pip install -e ".[plot]"

One figure per protocol that has runs, each saved as PNG and SVG:

- ``few_shot``: accuracy against shots (log scale), one axes per dataset and one for the
  average over the 11 datasets, one line per method;
- ``base2new``: three axes (Base, New, HM), one group of bars per dataset and for the average,
  one bar per method; the published averages (``clipprompt/published/``) are markers (black
  diamonds) on the average group where they are known;
- ``xd`` and ``dg``: one group of bars per dataset (source, targets, average), one bar per method.

Gaps (no run) are left out of lines and bars, never drawn as zero. The figures are built with
``matplotlib.figure.Figure`` (no pyplot, no display), so :func:`figures` returns objects a test
can inspect before :func:`save` writes them.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

MISSING = 'matplotlib is not installed: pip install -e ".[plot]"'


class PlotUnavailable(RuntimeError):
    """--plot was asked for but matplotlib cannot be imported."""


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotUnavailable(MISSING) from error
    return Figure


def _mean(value) -> float:
    """A table value as a number to plot; NaN (not drawn) for a gap or a text cell."""
    mean = getattr(value, "mean", None)
    return float("nan") if mean is None else float(mean)


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, n)
    return math.ceil(n / cols), cols


def few_shot_figure(per_method: Sequence, Figure):
    """Accuracy against shots: one axes per dataset + the average, one line per method."""
    datasets = [row[0] for row in per_method[0].rows]  # datasets..., then "Average (11)"
    rows, cols = _grid(len(datasets))
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, dataset in zip(axes, datasets):
        for t in per_method:
            shots = [int(c.split()[0]) for c in t.columns[1:]]
            row = next((r for r in t.rows if r[0] == dataset), None)
            ys = [_mean(v) for v in row[1:]] if row else [float("nan")] * len(shots)
            ax.plot(shots, ys, marker="o", label=t.group.title)
        if all(math.isnan(y) for line in ax.get_lines() for y in line.get_ydata()):
            ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center", color="gray")
            ax.set_yticks([])
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(s) for s in shots])
        ax.set_title(dataset)
        ax.set_xlabel("shots per class")
        ax.set_ylabel("accuracy (%)")
    for ax in axes[len(datasets):]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    fig.suptitle("Few-shot accuracy")
    return fig


def _grouped_bars(ax, groups: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]):
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(groups))]
        ax.bar(xs, values, width, label=label)
    ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right")
    ax.set_xlim(-0.5, len(groups) - 0.5)  # every group shown, also those that are all gaps
    ax.set_ylabel("accuracy (%)")


def base2new_figure(per_method: Sequence, published: Sequence[dict], published_name: dict, Figure):
    """Base, New and HM per dataset and on average: grouped bars, published averages as markers."""
    datasets = [row[0] for row in per_method[0].rows]
    fig = Figure(figsize=(max(8.0, 0.9 * len(datasets) * max(1, len(per_method)) / 2 + 4), 9),
                 layout="constrained")
    axes = fig.subplots(3, 1)
    known = {p["method"]: p for p in published}
    for k, (ax, measure) in enumerate(zip(axes, ("Base", "New", "HM"))):
        series = [(t.group.title, [_mean(r[k + 1]) for r in t.rows]) for t in per_method]
        _grouped_bars(ax, datasets, series)
        for t in per_method:
            pub = known.get(published_name.get(t.group.trainer, t.group.trainer))
            value = pub.get(measure.lower()) if pub else None
            if value:
                ax.plot([len(datasets) - 1], [float(value)], marker="D", color="black", linestyle="none",
                        label=f"published {pub['method']}")
        ax.set_title(measure)
    axes[0].legend(fontsize="small", ncol=2)
    fig.suptitle("Base-to-new generalization")
    return fig


def transfer_figure(table, Figure):
    """Cross-dataset or domain generalization: source, targets and average, one bar per method."""
    columns = [c.replace(" (source)", "") for c in table.columns[1:]]
    fig = Figure(figsize=(max(7.0, 0.7 * len(columns) * max(1, len(table.rows)) / 2 + 3), 4.5),
                 layout="constrained")
    ax = fig.subplots()
    _grouped_bars(ax, columns, [(row[0], [_mean(v) for v in row[1:]]) for row in table.rows])
    ax.legend(fontsize="small")
    ax.set_title(table.title)
    return fig


def figures(tables: Sequence, published: Sequence[dict] = (), published_name: dict | None = None) -> dict:
    """name -> matplotlib Figure, for each protocol the tables cover."""
    Figure = _figure_class()
    out = {}
    few = [t for t in tables if t.protocol == "few_shot"]
    if few:
        out["few_shot"] = few_shot_figure(few, Figure)
    b2n = [t for t in tables if t.protocol == "base2new"]
    if b2n:
        out["base2new"] = base2new_figure(b2n, published, published_name or {}, Figure)
    for t in tables:
        if t.protocol in ("xd", "dg"):
            out[t.protocol] = transfer_figure(t, Figure)
    return out


def save(figs: dict, folder: str | Path) -> list[Path]:
    """Write each figure as `<name>.png` and `<name>.svg` in `folder`; the paths written."""
    from ..fileio import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figs.items():
        for ext in ("png", "svg"):
            path = folder / f"{name}.{ext}"
            atomic_write(path, lambda tmp, fig=fig, ext=ext: fig.savefig(tmp, format=ext, dpi=120))
            written.append(path)
    return written
