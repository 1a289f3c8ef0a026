"""clipprompt.results.report on fake output trees with known numbers (Dassl-free)."""

import csv
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from clipprompt.results import protocols, report

REPO = Path(__file__).resolve().parent.parent
COOP = "shots_16/CoOp/vit_b16_ep50"


def put(root, rel, accuracy, log=False):
    folder = Path(root) / rel
    folder.mkdir(parents=True, exist_ok=True)
    if log:  # as Dassl leaves it: log.txt from an interrupted try, the finished run in log.txt-<timestamp>
        (folder / "log.txt").write_text("epoch [1/5] loss 2.3\n")
        (folder / "log.txt-2026-03-01-10-20-30").write_text(
            f"=> result\n* total: 100\n* accuracy: {accuracy:.1f}%\n* error: {100 - accuracy:.1f}%\n")
    else:
        (folder / "result.json").write_text(json.dumps({"metrics": {"accuracy": accuracy, "macro_f1": 1.0}}))


BASE = {d: [70.0 + i, 71.0 + i, 72.5 + i] for i, d in enumerate(protocols.BASE2NEW)}
NEW = {d: [60.0 + i, 62.0 + i, 61.0 + i] for i, d in enumerate(protocols.BASE2NEW)}


@pytest.fixture
def tree(tmp_path):
    out = tmp_path / "output"
    for d in protocols.BASE2NEW:
        for seed in (1, 2, 3):
            put(out, f"base2new/train_base/{d}/{COOP}/seed{seed}", BASE[d][seed - 1])
            if d == "dtd" and seed == 3:
                continue  # a missing seed
            # one run has only its logs (no result.json): read from log.txt-<timestamp>
            put(out, f"base2new/test_new/{d}/{COOP}/seed{seed}", NEW[d][seed - 1], log=(d == "eurosat" and seed == 2))
    # an interrupted run: a log without an accuracy line is not a result
    (out / f"base2new/test_new/ucf101/{COOP}/seed4").mkdir(parents=True)
    (out / f"base2new/test_new/ucf101/{COOP}/seed4/log.txt").write_text("epoch [1/5]\n")
    # CoCoOp: one dataset only
    put(out, "base2new/train_base/caltech101/shots_16/CoCoOp/c4/seed1", 90.0)
    put(out, "base2new/test_new/caltech101/shots_16/CoCoOp/c4/seed1", 80.0)
    # zero-shot, cross-dataset and DG
    put(out, "zeroshot/caltech101/base/ZeroshotCLIP/vit_b16", 96.0)
    put(out, "zeroshot/caltech101/new/ZeroshotCLIP/vit_b16", 94.0)
    put(out, "zeroshot/imagenet/all/ZeroshotCLIP/vit_b16", 66.7)
    put(out, "zeroshot/imagenet_a/all/ZeroshotCLIP/vit_b16", 47.8)
    for seed, acc in ((1, 71.0), (2, 72.0)):
        put(out, f"xd/train/imagenet/{COOP}/seed{seed}", acc)
        for i, d in enumerate(protocols.XD_TARGETS):
            put(out, f"xd/test/{d}/{COOP}/seed{seed}", 50.0 + i + seed)
        for i, d in enumerate(protocols.DG_TARGETS[:3]):  # imagenet_r missing
            put(out, f"xd/test/{d}/{COOP}/seed{seed}", 40.0 + i)
    put(out, "few_shot/dtd/shots_4/CoOp/vit_b16_ep50/seed1", 50.0)
    put(out, "few_shot/dtd/shots_4/CoOp/vit_b16_ep50/seed2", 54.0)
    return out


def table(tables, title_start):
    (found,) = [t for t in tables if t.title.startswith(title_start)]
    return found


def row(t, label):
    (found,) = [r for r in t.rows if r[0] == label]
    return found


def test_scan_reads_result_json_and_falls_back_to_timestamped_logs(tree):
    records = report.scan(tree)
    from_log = [r for r in records if r.source != "result.json"]
    assert [(r.dataset, r.part, r.seed, r.accuracy, r.source) for r in from_log] == [
        ("eurosat", "new", 2, round(NEW["eurosat"][1], 1), "log.txt-2026-03-01-10-20-30")]
    assert not any(r.seed == 4 for r in records)  # the interrupted run


def test_base2new_means_stds_hm_and_the_average_of_averages(tree):
    t = table(report.tables(report.scan(tree), "base2new"), "Base-to-new: CoOp")
    caltech = row(t, "caltech101")
    assert caltech[1].mean == pytest.approx(statistics.fmean(BASE["caltech101"]))
    assert caltech[1].std == pytest.approx(statistics.stdev(BASE["caltech101"]))
    assert caltech[1].n == 3
    assert caltech[3].mean == pytest.approx(report.hm(caltech[1].mean, caltech[2].mean))
    # the missing seed: two seeds averaged, not a zero
    dtd_new = row(t, "dtd")[2]
    assert dtd_new.n == 2 and dtd_new.mean == pytest.approx(statistics.fmean(NEW["dtd"][:2]))
    avg = row(t, "Average (11)")
    base = statistics.fmean(statistics.fmean(v) for v in BASE.values())
    new = statistics.fmean(r[2].mean for r in t.rows[:11])
    assert avg[1].mean == pytest.approx(base) and avg[2].mean == pytest.approx(new)
    assert avg[3].mean == pytest.approx(2 * base * new / (base + new))  # HM of the averages
    assert avg[3].mean != pytest.approx(statistics.fmean(r[3].mean for r in t.rows[:11]))


def test_markdown_shows_gaps_and_flags_fewer_seeds(tree):
    text = report.markdown(report.tables(report.scan(tree), "base2new"), report.scan(tree))
    assert "| dtd | 79.17 ± 1.26 | 69.00 ± 1.41 (2 seeds) |" in text
    cocoop = text.split("### Base-to-new: CoCoOp (c4, 16 shots)")[1].split("###")[0]
    assert "| caltech101 | 90.00 | 80.00 | 84.71 |" in cocoop
    assert "| imagenet | – | – | – |" in cocoop and "| Average (11) | – | – | – |" in cocoop
    assert " 0.00" not in cocoop
    assert "read from Dassl logs" in text and "eurosat" in text


def test_cross_dataset_and_dg_tables(tree):
    tables = report.tables(report.scan(tree))
    xd = table(tables, "Cross-dataset")
    assert xd.columns == ["method", "imagenet (source)", *protocols.XD_TARGETS, "Average (10)"]
    coop = row(xd, "CoOp (vit_b16_ep50, 16 shots)")
    assert coop[1].mean == pytest.approx(71.5) and coop[1].n == 2
    assert coop[2].mean == pytest.approx(51.5)  # caltech101: seeds 51, 52
    assert coop[-1].mean == pytest.approx(statistics.fmean(50.0 + i + 1.5 for i in range(10)))
    zs = row(xd, "ZeroshotCLIP (vit_b16)")
    assert zs[1].mean == pytest.approx(66.7) and zs[-1].mean is None

    dg = table(tables, "Domain generalization")
    assert dg.columns == ["method", "imagenet (source)", *protocols.DG_TARGETS, "Average (4)"]
    coop = row(dg, "CoOp (vit_b16_ep50, 16 shots)")
    assert [v.mean for v in coop[2:5]] == [40.0, 41.0, 42.0]
    assert coop[5].mean is None and coop[6].mean is None  # imagenet_r missing: gap, and no average
    assert row(dg, "ZeroshotCLIP (vit_b16)")[4].mean == pytest.approx(47.8)


def test_few_shot_table(tree):
    t = table(report.tables(report.scan(tree), "few_shot"), "Few-shot: CoOp")
    assert t.columns == ["dataset", "1 shots", "2 shots", "4 shots", "8 shots", "16 shots"]
    dtd = row(t, "dtd")
    assert dtd[3].mean == pytest.approx(52.0) and dtd[3].std == pytest.approx(statistics.stdev([50, 54]))
    assert dtd[1].mean is None


def run_report(*args):
    return subprocess.run([sys.executable, "-m", "clipprompt.report", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True)


def test_cli_csv_full_precision_and_empty_gaps(tree):
    result = run_report(tree, "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    caltech = next(r for r in rows if r["table"] == "base2new" and r["trainer"] == "CoOp"
                   and r["dataset"] == "caltech101" and r["measure"] == "Base")
    assert float(caltech["mean"]) == statistics.fmean(BASE["caltech101"])
    assert float(caltech["std"]) == pytest.approx(statistics.stdev(BASE["caltech101"]))
    assert caltech["n_seeds"] == "3" and caltech["seeds"] == "1 2 3"
    gap = next(r for r in rows if r["table"] == "base2new" and r["trainer"] == "CoCoOp" and r["dataset"] == "dtd")
    assert gap["mean"] == "" and gap["n_seeds"] == ""
    xd = next(r for r in rows if r["table"] == "xd" and r["trainer"] == "CoOp" and r["dataset"] == "imagenet")
    assert float(xd["mean"]) == 71.5


def test_cli_markdown_protocol_filter_and_errors(tree, tmp_path):
    result = run_report(tree, "--protocol", "dg")
    assert result.returncode == 0 and "### Domain generalization" in result.stdout
    assert "Base-to-new" not in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_report(empty).returncode == 1
    assert run_report(tmp_path / "nowhere").returncode == 2


# -- what results record, flags, unreadable files, summaries (issues 13 and 16) -----------------


def put_result(root, rel, accuracy, **run):
    folder = Path(root) / rel
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps({**run, "metrics": {"accuracy": accuracy}}))


def test_result_fields_win_over_the_path(tmp_path):
    """protocol/part/config_name/method from result.json; shots from num_shots, not the folder."""
    out = tmp_path / "out"
    run = dict(method="SEP", dataset="Caltech101", config_name="vit_b16_ep50_batch32", num_shots=2, seed=1)
    put_result(out, "anywhere/a", 90.0, protocol="base2new", part="train_base", **run)
    put_result(out, "anywhere/b", 70.0, protocol="base2new", part="test_new", **run)
    # an old-style folder whose name says 16 shots, but whose run trained with 2
    put_result(out, f"base2new/train_base/dtd/{COOP}/seed1", 60.0, trainer="CoOp", num_shots=2)
    records = report.scan(out)
    sep = sorted((r.part, r.dataset, r.shots, r.config, r.accuracy) for r in records if r.trainer == "SEP")
    assert sep == [("base", "caltech101", 2, "vit_b16_ep50_batch32", 90.0),
                   ("new", "caltech101", 2, "vit_b16_ep50_batch32", 70.0)]
    titles = [t.title for t in report.tables(records, "base2new")]
    assert "Base-to-new: CoOp (vit_b16_ep50, 2 shots)" in titles
    assert "Base-to-new: SEP (vit_b16_ep50_batch32, 2 shots)" in titles
    assert not any("16 shots" in title for title in titles)


def test_evaluation_runs_keep_the_shots_of_the_model_they_test(tmp_path):
    """xd/dg test runs record NUM_SHOTS -1 (all test images): they belong with their 2-shot model."""
    out = tmp_path / "out"
    put_result(out, "xd/train/imagenet/shots_2/CoOp/cfg/seed1", 70.0, trainer="CoOp", num_shots=2)
    put_result(out, "xd/test/caltech101/shots_2/CoOp/cfg/seed1", 80.0, trainer="CoOp", num_shots=-1)
    (xd,) = report.tables(report.scan(out), "xd")
    assert [r[0] for r in xd.rows] == ["CoOp (cfg, 2 shots)"]
    assert xd.rows[0][1].mean == 70.0 and xd.rows[0][2].mean == 80.0


def test_unfinished_training_is_flagged_and_corrupt_result_is_listed(tree):
    folder = tree / f"base2new/test_new/caltech101/{COOP}/seed1"
    data = json.loads((folder / "result.json").read_text())
    (folder / "result.json").write_text(json.dumps({**data, "training_finished": False}))
    broken = tree / f"base2new/test_new/oxford_pets/{COOP}/seed1/result.json"
    broken.write_text('{"metrics": {"accur')  # a run killed while writing, by an older version
    result = run_report(tree, "--protocol", "base2new")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    coop = text.split("### Base-to-new: CoOp (vit_b16_ep50, 16 shots)")[1].split("###")[0]
    assert report.UNFINISHED in coop.split("| caltech101 |")[1].split("\n")[0]
    assert report.UNFINISHED not in coop.split("| dtd |")[1].split("\n")[0]
    assert "evaluated before their training finished" in text and str(folder) in text
    assert "1 unreadable result.json (not counted):" in text and str(broken) in text
    assert "(2 seeds)" in coop.split("| oxford_pets |")[1].split("\n")[0]  # the other seeds still count
    assert "unreadable" in result.stderr


def test_summary_puts_every_method_in_one_table_sorted_by_hm(tmp_path):
    out = tmp_path / "out"
    for trainer, base, new in (("CoOp", 80.0, 60.0), ("SEP", 82.0, 75.0), ("MPL", 81.0, 70.0)):
        for d in protocols.BASE2NEW:
            put(out, f"base2new/train_base/{d}/shots_16/{trainer}/cfg/seed1", base)
            put(out, f"base2new/test_new/{d}/shots_16/{trainer}/cfg/seed1", new)
    put(out, "base2new/train_base/dtd/shots_16/CoCoOp/cfg/seed1", 99.0)  # incomplete: HM is a gap, last
    summary = report.tables(report.scan(out), "base2new")[0]
    assert summary.title.startswith("Base-to-new, all methods")
    assert [r[0].split()[0] for r in summary.rows] == ["SEP", "MPL", "CoOp", "CoCoOp"]
    assert summary.rows[0][3].mean == pytest.approx(report.hm(82.0, 75.0))
    assert summary.rows[-1][3].mean is None


def test_import_report_does_not_import_torch():
    code = "import sys, clipprompt.results.report; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert not any(line.rstrip().endswith(("| torch", "| torchvision")) for line in done.stderr.splitlines())
    assert "clipprompt.results.report" in done.stderr  # importtime really ran


# figures: tests/test_figures.py


