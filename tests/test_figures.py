"""clipprompt.results.figures: the figure objects a paper would use, checked as objects (not pixels)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from clipprompt.results import figures, layout, protocols, published_numbers, report

matplotlib = pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parent.parent
TRAINED = ("CoOp", "CoCoOp", "KgCoOp", "MaPLe", "PromptSRC", "TCP", "MPL", "SEP")


def accuracy(trainer, dataset, part, seed, shots=16):
    """A made-up but plausible accuracy: per method, per dataset, per part, a little seed noise."""
    t = (TRAINED.index(trainer) + 1) if trainer in TRAINED else 0
    d = list(protocols.DISPLAY_NAMES).index(dataset)
    base = {"base": 70, "new": 62, "source": 66, "target": 55}.get(part, 40 + 6 * math.log2(shots))
    gain = 0 if t == 0 else 4 + (t * 5 + d * 3) % 9 * 0.8  # which method wins depends on the dataset
    noise = 0 if seed is None else (seed - 2) * (0.4 + 0.15 * t)
    return min(99.0, base + (d * 7) % 23 + gain + noise)


def put(out, key: layout.RunKey, value):
    folder = key.folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps({"metrics": {"accuracy": value}}))


def fake_tree(out, trainers=TRAINED, seeds=(1, 2, 3), base2new=protocols.BASE2NEW, xd=protocols.XD_TARGETS,
              dg=protocols.DG_TARGETS, few_shot=protocols.FEW_SHOT, shots=protocols.SHOTS, zero_shot=True,
              seeds_of=None):
    """An output tree as the protocol scripts leave it. `seeds_of(trainer, dataset)` narrows the seeds."""
    seeds_of = seeds_of or (lambda trainer, dataset: seeds)
    for t in trainers:
        cfg = "vit_b16_ep10"
        for d in base2new:
            for seed in seeds_of(t, d):
                for part in ("base", "new"):
                    put(out, layout.RunKey("base2new", part, t, cfg, d, 16, seed), accuracy(t, d, part, seed))
        if xd or dg:
            for seed in seeds_of(t, protocols.SOURCE):
                put(out, layout.RunKey("xd", "source", t, cfg, protocols.SOURCE, 16, seed),
                    accuracy(t, protocols.SOURCE, "source", seed))
        for d in (*xd, *dg):
            for seed in seeds_of(t, d):
                put(out, layout.RunKey("xd", "target", t, cfg, d, 16, seed), accuracy(t, d, "target", seed))
        for d in few_shot:
            for k in shots:
                for seed in seeds_of(t, d):
                    put(out, layout.RunKey("few_shot", f"shots_{k}", t, cfg, d, k, seed),
                        accuracy(t, d, "few", seed, k))
    if zero_shot:
        zs = "ZeroshotCLIP"
        for d in base2new:
            for part in ("base", "new"):
                put(out, layout.RunKey("zeroshot", part, zs, "vit_b16", d), accuracy(zs, d, part, None) - 3)
        for d in sorted({*few_shot, *xd, *dg, *([protocols.SOURCE] if xd or dg or few_shot else [])}):
            put(out, layout.RunKey("zeroshot", "all", zs, "vit_b16", d), accuracy(zs, d, "target", None))
    return out


def build(out, compare=False, protocol="all"):
    records = report.scan(out)
    found = report.tables(records, protocol)
    published = {p: published_numbers.numbers(p) for p in protocols.PROTOCOLS} if compare else None
    data = figures.from_tables(found, reference=report.tables(records, "xd"), published=published)
    return {d.protocol: d for d in data}, figures.figures(data)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return build(fake_tree(tmp_path_factory.mktemp("full")))


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    out = tmp_path_factory.mktemp("partial")
    fake_tree(out, trainers=("CoOp", "SEP"), base2new=("caltech101", "dtd", "eurosat"), xd=("caltech101", "dtd"),
              dg=("imagenet_a",), few_shot=("dtd",), shots=(1, 4, 16), zero_shot=False,
              seeds_of=lambda t, d: (1,) if t == "SEP" else (1, 2, 3))
    return build(out)


def bars(ax):
    return [c for c in ax.containers if isinstance(c, matplotlib.container.BarContainer)]


def colours(fig):
    """method label -> the colours its bars, lines and legend entries have in this figure."""
    found = {}
    for handle, text in zip(fig.legends[0].legend_handles, fig.legends[0].get_texts()):
        if text.get_text() not in ("published", "fewer seeds", "Zero-shot CLIP (reference)"):
            colour = handle.get_facecolor() if hasattr(handle, "get_hatch") else handle.get_color()
            found.setdefault(text.get_text(), set()).add(matplotlib.colors.to_hex(colour))
    for ax in fig.axes:
        for container in bars(ax):
            found.setdefault(container.get_label(), set()).update(
                matplotlib.colors.to_hex(p.get_facecolor()) for p in container.patches)
        for line in ax.get_lines():
            if not line.get_label().startswith(("_", "published", "Zero-shot CLIP (reference)")):
                found.setdefault(line.get_label(), set()).add(matplotlib.colors.to_hex(line.get_color()))
    return found


def footnote(fig):
    return " ".join(fig.get_supxlabel().split())  # as one line, wherever it wraps


def texts(ax, text=figures.NA):
    return [t for t in ax.texts if t.get_text() == text]


# -- one colour and marker per method, clean labels, a fixed order --------------------------------


def test_a_method_has_one_colour_in_every_figure_whatever_the_scores(full):
    data, figs = full
    assert set(figs) == {"base2new", "few_shot", "xd", "dg"}
    seen = {}
    for fig in figs.values():
        for label, found in colours(fig).items():
            assert len(found) == 1, (label, found)
            seen.setdefault(label, set()).update(found)
    assert all(len(found) == 1 for found in seen.values()), seen
    assert seen["CoOp"] == {figures.TRAINERS["CoOp"][1]} and seen["SEP"] == {figures.TRAINERS["SEP"][1]}
    assert len({c for found in seen.values() for c in found}) == len(seen) == 9  # nine methods, nine colours
    # the order is fixed, not by score: the same in the xd and dg legends
    orders = [[t.get_text() for t in fig.legends[0].get_texts()] for fig in (figs["xd"], figs["dg"])]
    assert orders[0] == orders[1] == [name for name, _, _ in figures.TRAINERS.values() if name in orders[0]]
    assert len({colour for _, colour, _ in figures.TRAINERS.values()}) == len(figures.TRAINERS)  # no two alike
    assert not {colour for _, colour, _ in figures.TRAINERS.values()} & set(figures._OTHER_COLOURS)


def test_style_is_stable_for_unknown_and_tagged_methods():
    other = figures.Method("MyPrompt")
    assert figures.style(other) == figures.style(figures.Method("MyPrompt"))
    assert figures.style(figures.Method("SEP")) == ("#d62728", "*")
    tagged = figures.Method("SEP", "no prototypes")
    assert tagged.label == "SEP (no prototypes)" and figures.style(tagged) != figures.style(figures.Method("SEP"))
    # the colour is computed from the label alone (crc32, not Python's salted hash): the same in another process
    code = "from clipprompt.results import figures; print(figures.style(figures.Method('MyPrompt')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == str(figures.style(other))


def test_labels_carry_no_config_and_datasets_their_usual_names(full):
    _, figs = full
    labels = [t.get_text() for t in figs["base2new"].legends[0].get_texts()]
    assert labels[:2] == ["Zero-shot CLIP", "CoOp"] and "vit_b16" not in " ".join(labels)
    ticks = [t.get_text() for t in figs["base2new"].axes[-1].get_xticklabels()]
    assert ticks == ["ImageNet", "Caltech101", "OxfordPets", "StanfordCars", "Flowers102", "Food101",
                     "FGVCAircraft", "SUN397", "DTD", "EuroSAT", "UCF101", "Average (11)"]
    assert all(t.get_rotation() == 40 for t in figs["base2new"].axes[-1].get_xticklabels())
    dg = [t.get_text() for t in figs["dg"].axes[0].get_xticklabels()]
    assert dg == ["ImageNet (source)", "ImageNetV2", "ImageNet-Sketch", "ImageNet-A", "ImageNet-R", "Average (4)"]
    titles = [ax.get_title() for ax in figs["few_shot"].axes if ax.get_visible()]
    assert titles[:2] == ["ImageNet", "Caltech101"] and titles[-1] == "Average (11)"


def test_promptkd_is_marked_drawn_last_and_explained_in_the_footnote(tmp_path):
    fake_tree(tmp_path, trainers=("PromptKD", "CoOp"), base2new=("dtd",), xd=(), dg=(), few_shot=(), zero_shot=False)
    _, figs = build(tmp_path)
    labels = [t.get_text() for t in figs["base2new"].legends[0].get_texts()]
    assert labels == ["CoOp", "PromptKD †"]
    assert "† PromptKD: distilled from a ViT-L/14 teacher on unlabeled training images; not ranked" in footnote(figs["base2new"])


def test_two_configs_of_one_trainer_are_told_apart_by_their_config(tmp_path):
    fake_tree(tmp_path, trainers=("CoOp",), base2new=("dtd",), xd=(), dg=(), few_shot=(), zero_shot=False)
    put(tmp_path, layout.RunKey("base2new", "base", "CoOp", "other_cfg", "dtd", 16, 1), 50.0)
    data, _ = build(tmp_path)
    assert sorted(m.label for m in data["base2new"].results) == [
        "CoOp (other_cfg, 16 shots)", "CoOp (vit_b16_ep10, 16 shots)"]


# -- the seeds' spread -------------------------------------------------------------------------


def test_error_bars_and_bands_are_the_seeds_std(full):
    data, figs = full
    base = figs["base2new"].axes[0]
    coop = next(c for c in bars(base) if c.get_label() == "CoOp")
    dtd = data["base2new"].results[figures.Method("CoOp")][("dtd", "Base")]
    assert dtd.n == 3 and dtd.std > 0
    segments = coop.errorbar.lines[2][0].get_segments()
    (low, high) = segments[protocols.BASE2NEW.index("dtd")][:, 1]
    assert (low, high) == pytest.approx((dtd.mean - dtd.std, dtd.mean + dtd.std))
    zero_shot = next(c for c in bars(base) if c.get_label() == "Zero-shot CLIP")
    assert zero_shot.errorbar is None  # one evaluation, no spread
    few = next(ax for ax in figs["few_shot"].axes if ax.get_title() == "DTD")
    sep = data["few_shot"].results[figures.Method("SEP")]
    bands = [c for c in few.collections if matplotlib.colors.to_hex(c.get_facecolor()[0]) == figures.TRAINERS["SEP"][1]]
    assert len(bands) == 1
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(sep[("dtd", 1)].mean - sep[("dtd", 1)].std)
    assert max(ys) == pytest.approx(sep[("dtd", 16)].mean + sep[("dtd", 16)].std)


# -- missing data: a visible n/a, counted ------------------------------------------------------


def test_missing_bars_say_na_and_the_figure_counts_them(partial):
    data, figs = partial
    new = figs["base2new"].axes[1]
    # 12 groups: caltech101, dtd, eurosat have both methods, the average is partial (3/11); 8 datasets have none
    assert len(texts(new)) == 8  # one centred n/a per empty group, none over a bar
    partial = [a.get_text() for a in new.texts if a.get_text().endswith("/11")]
    assert partial == ["3/11", "3/11"]  # beside each method's average over 3 of the 11 datasets
    assert all(t.get_rotation() == 0 for t in texts(new))
    heights = [p.get_height() for c in bars(new) for p in c.patches]
    assert sum(math.isfinite(h) for h in heights) == 8 and not any(h == 0 for h in heights)  # 3 datasets + average
    note = footnote(figs["base2new"])
    assert "n/a: no run (48 of 72 bars)" in note  # 3 panels x 12 groups x 2 methods, 8 groups empty
    assert "k/N: an average over the k of N datasets that have runs (6 bars)" in note
    (xd,) = figs["xd"].axes
    assert len(texts(xd)) == 8  # 8 targets without runs; the average over 2 of 10 is drawn and marked
    assert "n/a: no run (16 of 24 bars)" in footnote(figs["xd"])  # 12 groups x 2 methods
    assert [a.get_text() for a in xd.texts if a.get_text().endswith("/10")] == ["2/10", "2/10"]
    assert "Hatched: fewer seeds than the others (3 bars)" in footnote(figs["xd"])  # SEP's one seed


def test_means_over_fewer_seeds_are_hatched_or_ringed(partial):
    data, figs = partial
    for ax in figs["base2new"].axes:  # Base, New and the HM computed from them
        sep, coop = (next(c for c in bars(ax) if c.get_label() == label) for label in ("SEP", "CoOp"))
        caltech = 1  # SEP has one seed, CoOp three
        assert sep.patches[caltech].get_hatch() and not coop.patches[caltech].get_hatch()
    assert data["base2new"].results[figures.Method("SEP")][("caltech101", "HM")].n == 1
    dtd = next(ax for ax in figs["few_shot"].axes if ax.get_title() == "DTD")
    (ring,) = [line for line in dtd.get_lines() if line.get_label() == "_fewer seeds"]
    assert list(ring.get_xdata()) == [1, 4, 16] and ring.get_markerfacecolor() == "none"
    assert "fewer seeds" in [t.get_text() for t in figs["few_shot"].legends[0].get_texts()]


def test_a_method_missing_in_a_group_gets_its_own_na(tmp_path):
    fake_tree(tmp_path, trainers=("CoOp", "SEP"), base2new=(), xd=("caltech101", "dtd"), dg=(), few_shot=(),
              zero_shot=False, seeds_of=lambda t, d: () if (t, d) == ("SEP", "dtd") else (1, 2))
    _, figs = build(tmp_path, protocol="xd")
    (ax,) = figs["xd"].axes
    sep = next(c for c in bars(ax) if c.get_label() == "SEP")
    dtd = 1 + protocols.XD_TARGETS.index("dtd")  # after the source
    rotated = [t for t in texts(ax) if t.get_rotation() == 90]
    assert len(rotated) == 1 and rotated[0].get_position()[0] == pytest.approx(sep.patches[dtd].get_x()
                                                                                 + sep.patches[dtd].get_width() / 2)
    assert math.isnan(sep.patches[dtd].get_height())


def test_few_shot_panels_without_runs_say_na(partial):
    _, figs = partial
    panels = {ax.get_title(): ax for ax in figs["few_shot"].axes if ax.get_visible()}
    assert len(panels) == len(protocols.FEW_SHOT) + 1  # every dataset is shown, runs or not
    assert [t.get_text() for t in panels["ImageNet"].texts] == [figures.NA]
    # DTD has runs at 1, 4 and 16 shots: "n/a" at the bottom of 2 and 8, where no method has a point
    assert sorted(t.get_position()[0] for t in texts(panels["DTD"])) == [2, 8]
    assert "n/a: no run (" in footnote(figs["few_shot"])
    # the average over DTD alone is drawn, and the panel says so once (not once per point)
    assert [t.get_text() for t in panels["Average (11)"].texts if "datasets" in t.get_text()] == ["over 1/11 datasets"]


def test_a_few_shot_method_missing_some_shots_is_named(tmp_path):
    for trainer, shots in (("CoOp", (1, 2, 4)), ("SEP", (1, 4))):
        for k in shots:
            put(tmp_path, layout.RunKey("few_shot", f"shots_{k}", trainer, "c", "dtd", k, 1), 50.0 + k)
    _, figs = build(tmp_path)
    dtd = next(ax for ax in figs["few_shot"].axes if ax.get_title() == "DTD")
    assert "n/a: SEP at 2" in [t.get_text() for t in dtd.texts]
    assert "n/a: no run (" in footnote(figs["few_shot"])


def test_a_complete_tree_has_no_na(full):
    _, figs = full
    for fig in figs.values():
        assert not any(texts(ax) for ax in fig.axes)
        assert "n/a" not in footnote(fig)


# -- legends outside the data ------------------------------------------------------------------


def test_legends_are_above_the_panels_never_on_them(full, partial):
    for _, figs in (full, partial):
        for name, fig in figs.items():
            fig.draw_without_rendering()  # lays the figure out
            assert all(ax.get_legend() is None for ax in fig.axes), name
            (legend,) = fig.legends
            box = legend.get_window_extent()
            for ax in fig.axes:
                if ax.get_visible():
                    assert box.y0 >= ax.get_window_extent().y1 - 1, name  # above every panel


# -- published numbers: only with --compare, for every method that has one -------------------------


def published_markers(fig):
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_label().startswith("published")]


def test_no_published_marker_without_compare(full):
    _, figs = full
    assert all(published_markers(fig) == [] for fig in figs.values())
    assert all("published" not in [t.get_text() for t in fig.legends[0].get_texts()] for fig in figs.values())


def test_published_markers_for_every_method_with_a_number(tmp_path):
    """With --compare, every drawn method that has published numbers gets its markers, per dataset
    and on average, in its own colour, on its own bars."""
    fake_tree(tmp_path, few_shot=(), dg=())
    _, figs = build(tmp_path, compare=True)
    base2new = {line.get_label() for line in published_markers(figs["base2new"])}
    known = published_numbers.lookup("base2new")
    drawn = {*TRAINED, "ZeroshotCLIP"}  # the methods of the fake tree
    with_numbers = {figures.Method(t).label for (t, d, m), n in known.items()
                    if t in drawn and d == "average" and m == "hm" and n.value}
    assert base2new == {f"published {label}" for label in with_numbers}
    assert len(with_numbers) >= 7  # not only CoOp: zero-shot CLIP, CoOp, CoCoOp, KgCoOp, MaPLe, PromptSRC, TCP, MPL
    hm = figs["base2new"].axes[2]
    coop = [line for line in hm.get_lines() if line.get_label() == "published CoOp"]
    assert len(coop) == 12  # the 11 datasets and the average
    coop_bars = next(c for c in bars(hm) if c.get_label() == "CoOp")
    centres = [b.get_x() + b.get_width() / 2 for b in coop_bars.patches]
    for line in coop:  # on CoOp's bars
        assert min(abs(line.get_xdata()[0] - x) for x in centres) < 1e-9
    average = max(coop, key=lambda line: line.get_xdata()[0])
    assert average.get_ydata()[0] == pytest.approx(known[("CoOp", "average", "hm")].value)
    dtd = [line for line in coop if abs(line.get_xdata()[0] - centres[8]) < 1e-9]
    assert dtd[0].get_ydata()[0] == pytest.approx(known[("CoOp", "dtd", "hm")].value)
    assert matplotlib.colors.to_hex(average.get_markerfacecolor()) == figures.TRAINERS["CoOp"][1]
    xd = {line.get_label() for line in published_markers(figs["xd"])}
    with_xd = {figures.Method(t).label for (t, d, m), n in published_numbers.lookup("xd").items()
               if t in drawn and n.value is not None}
    assert xd == {f"published {label}" for label in with_xd}
    assert "published" in [t.get_text() for t in figs["xd"].legends[0].get_texts()]


# -- y-ranges, references, source and average set apart --------------------------------------


def test_panels_that_compare_share_a_y_range(full):
    _, figs = full
    limits = {ax.get_ylim() for ax in figs["base2new"].axes}
    assert len(limits) == 1
    (low, high), = limits
    assert 0 <= low < high <= 100 and low % 5 == 0 and high % 5 == 0


def test_few_shot_panels_do_not_blow_a_small_gap_up(tmp_path):
    for seed, (one, sixteen) in enumerate(((6.25, 8.3), (6.3, 8.2)), start=1):
        for k, value in ((1, one), (16, sixteen)):
            put(tmp_path, layout.RunKey("few_shot", f"shots_{k}", "CoOp", "c", "dtd", k, seed), value)
    _, figs = build(tmp_path)
    dtd = next(ax for ax in figs["few_shot"].axes if ax.get_title() == "DTD")
    low, high = dtd.get_ylim()
    assert high - low >= 10 and low <= 6.25 - 0.1 and high >= 8.3 and low >= 0
    assert figures._y_range([97.0, 98.0]) == (90.0, 100.0)  # never past 100


def test_zero_shot_clip_is_the_reference_line_of_few_shot_panels(full):
    data, figs = full
    reference = data["few_shot"].reference
    assert set(reference) == {*protocols.FEW_SHOT, figures.AVERAGE}
    for ax in figs["few_shot"].axes:
        if not ax.get_visible():
            continue
        (line,) = [line for line in ax.get_lines() if line.get_label() == "Zero-shot CLIP (reference)"]
        dataset = figures.AVERAGE if ax.get_title().startswith("Average") else next(
            d for d in protocols.FEW_SHOT if protocols.display_name(d) == ax.get_title())
        assert list(line.get_ydata()) == [reference[dataset]] * 2
        assert line.get_linestyle() == "--"
    assert "Zero-shot CLIP (reference)" in [t.get_text() for t in figs["few_shot"].legends[0].get_texts()]


def test_no_reference_line_without_zero_shot_results(partial):
    _, figs = partial
    assert not any(line.get_label().startswith("Zero-shot") for ax in figs["few_shot"].axes for line in ax.get_lines())


def test_source_and_average_are_set_apart_in_xd_and_dg(full):
    _, figs = full
    for name in ("xd", "dg"):
        (ax,) = figs[name].axes
        shades = {matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches if p not in
                  [q for c in bars(ax) for q in c.patches]}
        assert shades == {figures._SOURCE_SHADE, figures._AVERAGE_SHADE}
        separators = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
        ticks = ax.get_xticks()
        assert len(separators) == 2
        assert ticks[0] < separators[0] < ticks[1] and ticks[-2] < separators[1] < ticks[-1]
        assert ticks[1] - ticks[0] > 1 and ticks[-1] - ticks[-2] > 1  # a gap on both sides of the targets
        assert ticks[2] - ticks[1] == pytest.approx(1)


# -- files and the command ---------------------------------------------------------------------


def test_save_writes_png_svg_and_pdf(partial, tmp_path):
    _, figs = partial
    written = figures.save(figs, tmp_path / "figs")
    assert sorted(p.name for p in written) == sorted(f"{n}.{e}" for n in figs for e in ("png", "svg", "pdf"))
    assert (tmp_path / "figs" / "xd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "figs" / "xd.pdf").read_bytes()[:5] == b"%PDF-"
    svg = (tmp_path / "figs" / "dg.svg").read_text()
    assert "<svg" in svg[:2000] and "ImageNet-A" in svg  # text stays text


def test_plot_cli_compares_only_when_asked(tmp_path, capsys):
    out = fake_tree(tmp_path / "out", trainers=("CoOp",), base2new=("dtd",), xd=(), dg=(), few_shot=())
    assert report.main([str(out), "--protocol", "base2new", "--plot", str(tmp_path / "p")]) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["base2new.pdf", "base2new.png", "base2new.svg"]
    assert b"published" not in (tmp_path / "p" / "base2new.svg").read_bytes()
    assert report.main([str(out), "--protocol", "base2new", "--compare", "--plot", str(tmp_path / "q")]) == 0
    assert b"published" in (tmp_path / "q" / "base2new.svg").read_bytes()
    assert "figure: " in capsys.readouterr().err


def test_plot_without_matplotlib_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    out = fake_tree(tmp_path / "out", trainers=("CoOp",), base2new=("dtd",), xd=(), dg=(), few_shot=())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert report.main([str(out), "--plot", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == 'error: matplotlib is not installed: pip install -e ".[plot]"'
    assert not any("Traceback" in line for line in err) and not (tmp_path / "q").exists()


def test_the_report_imports_no_matplotlib_without_plot(tmp_path):
    out = fake_tree(tmp_path / "out", trainers=("CoOp",), base2new=("dtd",), xd=(), dg=(), few_shot=())
    code = ("import sys; from clipprompt.results import report; report.main([sys.argv[1]]); "
            "print('matplotlib' in sys.modules, 'clipprompt.results.figures' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False False"
