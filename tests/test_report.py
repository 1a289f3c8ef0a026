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
    assert "| imagenet | – | – | – |" in cocoop
    # the average over the one dataset there is: shown and marked, never blank (issue 20)
    assert "| Average (11) | 90.00 (avg 1/11) | 80.00 (avg 1/11) | 84.71 (avg 1/11) |" in cocoop
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
    assert coop[5].mean is None  # imagenet_r missing: a gap
    assert coop[6].mean == pytest.approx(41.0) and coop[6].covered == "3/4"  # the average of 3 of 4, marked
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


# -- one row per method, partial averages, duplicates, other folders, bad values (issues 20, 22) ----


def fake_result(root, rel, accuracy, trainer, dataset, config, part, seed=1, shots=16, protocol="base2new", **extra):
    """A result.json as clipprompt.results.result_file writes it (the fields the report reads)."""
    folder = Path(root) / rel
    folder.mkdir(parents=True, exist_ok=True)
    record = dict(trainer=trainer, dataset=dataset, subsample_classes=part, num_shots=shots, seed=seed,
                  protocol=protocol, part=part, config_name=config, **extra, metrics={"accuracy": accuracy})
    (folder / "result.json").write_text(json.dumps(record))
    return folder


SEP_CONFIG = {"imagenet": "vit_b16_ep10_batch128", "sun397": "vit_b16_ep10_batch128"}  # as scripts/sep does


def sep_tree(out, datasets=protocols.BASE2NEW):
    for i, d in enumerate(datasets):
        config = SEP_CONFIG.get(d, "vit_b16_ep50_batch32")
        for part, top, acc in (("base", "train_base", 80.0 + i), ("new", "test_new", 70.0 + i)):
            fake_result(out, f"base2new/{top}/{d}/shots_16/SEP/{config}/seed1", acc, "SEP", d, config, part)


def test_a_method_with_two_configs_is_one_row_with_its_average(tmp_path):
    """scripts/sep trains ImageNet and SUN397 with another config than the other nine: one SEP row."""
    out = tmp_path / "out"
    sep_tree(out)
    found = report.tables(report.scan(out), "base2new")
    summary, per_method = found[0], found[1:]
    assert len(per_method) == 1 and len(summary.rows) == 1
    t = per_method[0]
    assert t.title == "Base-to-new: SEP (vit_b16_ep10_batch128 + vit_b16_ep50_batch32, 16 shots)"
    avg = row(t, "Average (11)")
    base = statistics.fmean(80.0 + i for i in range(11))
    new = statistics.fmean(70.0 + i for i in range(11))
    assert avg[1].mean == pytest.approx(base) and avg[2].mean == pytest.approx(new) and not avg[1].covered
    assert summary.rows[0][3].mean == pytest.approx(report.hm(base, new))
    text = report.markdown(found, [])
    note = "SEP used 2 configs: vit_b16_ep10_batch128: imagenet, sun397; vit_b16_ep50_batch32: caltech101,"
    assert note in text.split("### Base-to-new: SEP")[1] and note in text.split("### Base-to-new, all methods")[1]
    lines = list(csv.DictReader(io.StringIO(report.to_csv(per_method))))
    configs = {r["dataset"]: r["config"] for r in lines if r["measure"] == "Base"}
    assert configs["imagenet"] == configs["sun397"] == "vit_b16_ep10_batch128"
    assert configs["dtd"] == "vit_b16_ep50_batch32"


def test_two_configs_on_one_dataset_stay_two_rows(tmp_path):
    out = tmp_path / "out"
    for config, acc in (("ep50", 80.0), ("ep10", 75.0)):
        fake_result(out, f"base2new/train_base/dtd/shots_16/CoOp/{config}/seed1", acc, "CoOp", "dtd", config, "base")
    titles = [t.title for t in report.tables(report.scan(out), "base2new")[1:]]
    assert titles == ["Base-to-new: CoOp (ep10, 16 shots)", "Base-to-new: CoOp (ep50, 16 shots)"]


def test_partial_averages_are_shown_and_marked_in_every_table(tmp_path):
    out = tmp_path / "out"
    sep_tree(out, protocols.BASE2NEW[:4])
    found = report.tables(report.scan(out), "base2new")
    text = report.markdown(found, [])
    base, new = statistics.fmean(80.0 + i for i in range(4)), statistics.fmean(70.0 + i for i in range(4))
    hm = report.hm(base, new)
    average = f"| {base:.2f} (avg 4/11) | {new:.2f} (avg 4/11) | {hm:.2f} (avg 4/11) |"
    assert f"| Average (11) {average}" in text
    summary = text.split("### Base-to-new, all methods")[1].split("###")[0]
    assert f"| SEP (vit_b16_ep10_batch128 + vit_b16_ep50_batch32, 16 shots) {average}" in summary
    assert "avg k/N: an average over the k of its N datasets that have a number." in summary


def test_two_results_for_one_key_warn_naming_both_and_count_the_first(tmp_path):
    out = tmp_path / "out"
    first = fake_result(out, "a/base2new/train_base/dtd/shots_16/CoOp/cfg/seed1", 80.0, "CoOp", "dtd", "cfg", "base",
                        identity={"OPTIM.LR": 0.002, "SEED": 1})
    second = fake_result(out, "b/base2new/train_base/dtd/shots_16/CoOp/cfg/seed1", 60.0, "CoOp", "dtd", "cfg", "base",
                         identity={"OPTIM.LR": 0.1, "SEED": 1})
    warnings = []
    (t,) = report.tables(report.scan(out), "base2new", warnings)[1:]
    assert row(t, "dtd")[1].mean == 80.0 and row(t, "dtd")[1].n == 1  # not overwritten, not averaged
    (warning,) = warnings
    assert f"{first} (counted) and {second} (left out), another configuration: OPTIM.LR (0.002 -> 0.1)" in warning
    assert "seed 1" in warning
    result = run_report(out)
    assert result.returncode == 0 and f"warning: two results for base2new CoOp (cfg) dtd base, seed 1: {first}" \
        in result.stderr
    assert "1 warning(s):" in result.stdout and str(second) in result.stdout


def test_a_tagged_variant_is_its_own_row(tmp_path):
    out = tmp_path / "out"
    fake_result(out, "base2new/train_base/dtd/shots_16/CoOp/cfg/seed1", 80.0, "CoOp", "dtd", "cfg", "base")
    fake_result(out, "base2new/train_base/dtd/shots_16/CoOp@lr0.1/cfg/seed1", 60.0, "CoOp", "dtd", "cfg", "base",
                tag="lr0.1")
    put(out, "base2new/train_base/eurosat/shots_16/CoOp@lr0.1/cfg/seed1", 50.0)  # older result: tag from the path
    warnings = []
    found = report.tables(report.scan(out), "base2new", warnings)
    assert not warnings
    assert [r[0] for r in found[0].rows] == ["CoOp (cfg, 16 shots)", "CoOp@lr0.1 (cfg, 16 shots)"]
    tagged = table(found, "Base-to-new: CoOp@lr0.1")
    assert row(tagged, "dtd")[1].mean == 60.0 and row(tagged, "eurosat")[1].mean == 50.0


def test_folders_outside_the_layout_are_reported_by_trainer_dataset_and_config(tmp_path):
    """Ten result.json of plain train.py runs: a table, not "No finished runs"."""
    out = tmp_path / "output"
    for i in range(10):
        seed = i % 2 + 1
        folder = out / f"foo/run{i}"
        folder.mkdir(parents=True)
        config = "vit_b16_ep50" if i < 8 else "vit_b16_ep10"
        (folder / "result.json").write_text(json.dumps(dict(
            trainer="CoOp", dataset="Caltech101" if i < 6 else "DescribableTextures", subsample_classes="all",
            num_shots=16, seed=seed if i < 8 else -1, config_name=config, metrics={"accuracy": 50.0 + i})))
    result = run_report(out)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "### Runs outside the protocol layout (by trainer, dataset and config)" in text
    lines = [line for line in text.splitlines() if line.startswith("| CoOp |")]
    # caltech101: 6 runs, seeds 1 and 2 three times each -> the first of each seed counted, the rest warned
    assert lines[0].startswith("| CoOp | caltech101 | vit_b16_ep50 | all | 16 | 50.50 ± 0.71 | 1, 2 |")
    # dtd, ep50: seeds 1 and 2
    assert "| CoOp | dtd | vit_b16_ep50 | all | 16 | 56.50 ± 0.71 | 1, 2 |" in text
    # dtd, ep10, no seed (-1): each run its own row, not collapsed into one
    assert sum("| CoOp | dtd | vit_b16_ep10 | all | 16 | 58.00 " in line or
               "| CoOp | dtd | vit_b16_ep10 | all | 16 | 59.00 " in line for line in lines) == 2
    assert "No finished runs" not in result.stderr and result.stderr.count("two results for other CoOp") == 4


def test_a_copy_of_a_run_folder_is_listed_and_left_out(tree):
    """seed1.bak must not replace seed1 in the mean (issue 22, 7)."""
    folder = tree / f"base2new/train_base/caltech101/{COOP}"
    (folder / "seed1.bak").mkdir()
    (folder / "seed1.bak" / "result.json").write_text(json.dumps(
        {"trainer": "CoOp", "dataset": "Caltech101", "seed": 1, "num_shots": 16, "protocol": "base2new",
         "part": "base", "config_name": "vit_b16_ep50", "metrics": {"accuracy": 5.0}}))
    unrecognized = []
    t = table(report.tables(report.scan(tree, unrecognized=unrecognized), "base2new"), "Base-to-new: CoOp")
    assert row(t, "caltech101")[1].mean == pytest.approx(statistics.fmean(BASE["caltech101"]))
    assert unrecognized == [(str(folder / "seed1.bak"), unrecognized[0][1])]
    result = run_report(tree)
    assert result.returncode == 0 and f"warning: left out {folder / 'seed1.bak'}: not a run folder" in result.stderr
    assert "1 folder(s) not counted" in result.stdout


def test_zero_shot_results_without_a_seed_do_not_collapse(tmp_path):
    """Two seedless results for one key: both named, one counted, never silently one (issue 22, 7)."""
    out = tmp_path / "out"
    put(out, "a/zeroshot/dtd/base/ZeroshotCLIP/vit_b16", 40.0)
    put(out, "b/zeroshot/dtd/base/ZeroshotCLIP/vit_b16", 44.0)
    warnings = []
    report.tables(report.scan(out), "base2new", warnings)
    (warning,) = warnings
    assert "no seed" in warning and str(out / "a/zeroshot") in warning and str(out / "b/zeroshot") in warning
    assert "one of them records no identity" in warning


@pytest.mark.parametrize("accuracy, reason", [
    ("NaN", "ValueError: accuracy is nan"), ('"88.1"', "ValueError: accuracy '88.1' is not a number"),
    ("true", "ValueError: accuracy True is not a number"), ("Infinity", "ValueError: accuracy is inf")])
def test_a_bad_accuracy_is_reported_per_file_and_the_rest_printed(tree, accuracy, reason):
    bad = tree / f"base2new/test_new/oxford_pets/{COOP}/seed1/result.json"
    bad.write_text('{"metrics": {"accuracy": %s}}' % accuracy)
    result = run_report(tree, "--protocol", "base2new")
    assert result.returncode == 0, result.stderr
    assert f"- {bad}: {reason}" in result.stdout and f"unreadable {bad} ({reason})" in result.stderr
    coop = result.stdout.split("### Base-to-new: CoOp (vit_b16_ep50, 16 shots)")[1]
    assert "(2 seeds)" in coop.split("| oxford_pets |")[1].split("\n")[0]  # the other seeds still count
    assert "Traceback" not in result.stderr


def test_plot_into_an_unwritable_folder_is_one_line_and_exit_2(tree, tmp_path):
    pytest.importorskip("matplotlib")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_report(tree, "--plot", str(blocker / "figures"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot write the figures to {blocker / 'figures'}")
    assert "Traceback" not in result.stderr


def test_promptkd_is_listed_apart_marked_and_never_ranked(tmp_path):
    """Its own protocol (a ViT-L/14 teacher, unlabeled training images): after every method trained on
    labels only, even with a better HM, with its note under the table."""
    out = tmp_path / "out"
    for trainer, base, new in (("CoOp", 80.0, 60.0), ("PromptKD", 86.0, 80.0), ("SEP", 82.0, 75.0)):
        for d in protocols.BASE2NEW:
            put(out, f"base2new/train_base/{d}/shots_16/{trainer}/cfg/seed1", base)
            put(out, f"base2new/test_new/{d}/shots_16/{trainer}/cfg/seed1", new)
    summary = report.tables(report.scan(out), "base2new")[0]
    assert [r[0].split()[0] for r in summary.rows] == ["SEP", "CoOp", "PromptKD"]
    assert summary.rows[-1][0] == "PromptKD (cfg, 16 shots) †"
    note = "† PromptKD: distilled from a ViT-L/14 teacher on unlabeled training images; not ranked."
    assert note in summary.notes
    assert note in report.markdown(report.tables(report.scan(out), "base2new"), [])
    for trainer, accuracy in (("CoOp", 60.0), ("PromptKD", 70.0)):
        put(out, f"xd/train/imagenet/shots_16/{trainer}/cfg/seed1", accuracy)
        for d in protocols.XD_TARGETS:
            put(out, f"xd/test/{d}/shots_16/{trainer}/cfg/seed1", accuracy)
    (xd,) = report.tables(report.scan(out), "xd")
    assert [r[0].split()[0] for r in xd.rows] == ["CoOp", "PromptKD"] and note in xd.notes
