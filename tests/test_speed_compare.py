"""bench/compare/speed.py and the estimate in bench/compare/common.py: what runs without the authors' code."""

import importlib
import inspect
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench" / "compare"))

common = importlib.import_module("common")
speed = importlib.import_module("speed")


def test_schedule_reads_batch_and_epochs_from_our_configs_and_drops_the_last_incomplete_batch():
    coop = common.schedule("CoOp", "vit_b16_ep50")
    assert (coop.batch_size, coop.epochs) == (32, 50)
    # Caltech101: 100 classes, base half 50, 16 shots = 800 images; 800 // 32 = 25 steps an epoch
    assert common.CALTECH101.base_classes == 50 and common.CALTECH101.base_train_images == 800
    assert coop.steps() == 1250 and coop.images_trained() == 40000
    kgcoop = common.schedule("KgCoOp", "vit_b16_ep100_ctxv1")
    assert (kgcoop.batch_size, kgcoop.epochs, kgcoop.steps()) == (128, 100, 600)  # 800 // 128 = 6: 32 images dropped
    assert common.schedule("CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1").steps() == 8000
    odd = common.ReferenceDataset("odd", classes=7, shots=2, test_images=10)
    assert (odd.base_classes, odd.base_train_images) == (4, 8)  # Dassl's base half: the first ceil(n / 2)


def test_base_to_new_hours_lie_between_a_per_step_and_a_per_image_cost_of_training_plus_the_test_images():
    train = common.SideBySide(theirs=2.0, ours=1.0, ratio=2.0, fastest_ratio=2.0)
    evaluation = common.SideBySide(theirs=0.8, ours=0.4, ratio=2.0, fastest_ratio=2.0)
    plan = common.Schedule("CoOp/vit_b16_ep50", batch_size=32, epochs=50)
    hours = common.base_to_new_hours(plan, train, evaluation, batch=4)
    # low: 1250 steps at the timed step's cost; high: 40,000 images at its cost per image; tests per image
    assert hours["theirs"] == pytest.approx(((1250 * 2.0 + 2465 * 0.2) / 3600, (40000 * 0.5 + 2465 * 0.2) / 3600))
    assert hours["ours"] == pytest.approx(((1250 * 1.0 + 2465 * 0.1) / 3600, (40000 * 0.25 + 2465 * 0.1) / 3600))
    cocoop = common.Schedule("CoCoOp/x", batch_size=1, epochs=10)  # smaller than the timed batch: per image is low
    low, high = common.base_to_new_hours(cocoop, train, evaluation, batch=4)["ours"]
    assert (low, high) == pytest.approx(((8000 * 0.25 + 246.5) / 3600, (8000 * 1.0 + 246.5) / 3600))
    same = common.base_to_new_hours(common.Schedule("MaPLe/x", 4, 5), train, evaluation, batch=4)["ours"]
    assert same[0] == pytest.approx(same[1]) == pytest.approx((1000 * 1.0 + 246.5) / 3600)
    assert common.hours_text(same) == f"{same[0]:.1f}" and common.hours_text((1.04, 2.5)) == "1.0–2.5"


def test_time_method_times_both_sides_and_estimates_the_run(capsys):
    """With stand-ins for the models: our step is `loss` backpropagated, our evaluation runs inside
    `cached_text_features` (computed once), theirs as given; the printed estimate is the returned one."""
    import contextlib

    import torch

    class Ours(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))
            self.cached, self.calls, self.paths = False, [], None

        def configure(self, **paths):
            self.paths = paths
            return self

        def loss(self, images, labels):
            self.calls.append(("loss", self.training, self.cached))
            return self.w * images.sum(), {}

        def forward(self, images):
            self.calls.append(("forward", self.training, self.cached))

        @contextlib.contextmanager
        def cached_text_features(self):
            self.cached = True
            yield
            self.cached = False

    ours, theirs = Ours(), []
    images, labels = torch.ones(2, 3), torch.zeros(2)
    result = common.time_method("Stand-in", common.Schedule("X/y", 4, 1), ours, lambda: theirs.append("train"),
                                lambda: theirs.append("eval"), images, labels, runs=3)
    assert ours.paths == common.PATHS["fast (default)"] == {"eos_cut": True, "fused": True}
    assert theirs == ["train"] * 4 + ["eval"] * 4  # a warm-up and 3 runs each
    assert set(ours.calls) == {("loss", True, False), ("forward", False, True)}
    assert ours.w.grad is not None
    assert result.batch == 2 and result.hours == common.base_to_new_hours(result.plan, result.train, result.evaluation, 2)
    out = capsys.readouterr().out
    hours = {side: common.hours_text(result.hours[side]) for side in ("theirs", "ours")}
    assert f"authors {hours['theirs']} h, ours {hours['ours']} h" in out
    assert "Caltech101 (X/y: 200 steps of 4, 2465 test images)" in out


def test_every_case_names_a_script_whose_speed_takes_its_keywords_and_a_config_that_exists():
    assert set(speed.CASES) >= {"CoOp", "CoCoOp", "KgCoOp", "ProGrad", "TCP", "SEP", "VPT", "IVLP", "MaPLe",
                                "PromptSRC", "MMA", "MMRL", "CoOp_DePT", "KgCoOp_DePT", "MaPLe_DePT"}
    for method, case in speed.CASES.items():
        assert case.checkout in speed.REPOSITORIES, method
        function = importlib.import_module(case.script).speed
        inspect.signature(function).bind(Path("checkout"), batch=4, runs=5, **case.keywords)
        source = inspect.getsource(function)
        assert "time_method(" in source and "schedule(" in source, method


def test_table_has_a_row_per_method_and_says_which_were_not_run():
    train = common.SideBySide(2.0, 1.0, 2.0, 1.5)
    evaluation = common.SideBySide(1.0, 0.8, 1.25, 1.1)
    done = common.Speed("CoOp", common.Schedule("CoOp/vit_b16_ep50", 32, 50), 4, train, evaluation,
                        {"theirs": (12.34, 20.0), "ours": (6.71, 6.74)})
    lines = speed.table({"CoOp": done, "MaPLe": None, "MMA": "RuntimeError: boom"}).splitlines()
    assert lines[0] == speed.HEADER and lines[1].count("|") == lines[0].count("|")
    assert lines[2] == "| CoOp | 2.00 | 1.50 | 1.25 | 1.10 | 12.3–20.0 | 6.7 |"
    assert lines[3] == "| MaPLe | not run (no checkout) | | | | | |"
    assert lines[4] == "| MMA | failed: RuntimeError: boom | | | | | |"


def test_a_method_that_fails_is_reported_and_the_others_still_run(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.import_module("coop"), "speed", lambda *a, **k: 1 / 0)
    (tmp_path / "coop").mkdir()
    assert speed.main(["--codes", str(tmp_path), "--methods", "CoOp", "MMA", "--json", str(tmp_path / "r.json")]) == 1
    captured = capsys.readouterr()
    assert "| CoOp | failed: ZeroDivisionError: division by zero |" in captured.out
    assert "| MMA | not run (no checkout) |" in captured.out and "ZeroDivisionError" in captured.err
    assert json.loads((tmp_path / "r.json").read_text()) == {"CoOp": "ZeroDivisionError: division by zero", "MMA": None}


def test_speed_without_checkouts_lists_every_method_as_not_run(capsys):
    assert speed.main(["--methods", "CoOp", "MMA"]) == 0
    out = capsys.readouterr().out
    assert "CoOp: not run, no checkout of KaiyangZhou/CoOp (--code coop=PATH)" in out
    assert "| MMA | not run (no checkout) |" in out


@pytest.mark.parametrize("argv, message", [
    (["--code", "copo=/tmp/x"], "error: --code copo=/tmp/x: expected NAME=PATH with NAME one of coop, kgcoop,"),
    (["--code", "coop"], "error: --code coop: expected NAME=PATH"),
    (["--codes", "/no/such/folder"], "error: --codes /no/such/folder: no such folder"),
])
def test_speed_refuses_a_bad_checkout_argument_in_one_line(capsys, argv, message):
    assert speed.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_codes_folder_finds_the_checkouts_by_name(tmp_path):
    (tmp_path / "coop").mkdir()
    (tmp_path / "mpl").mkdir()
    (tmp_path / "unrelated").mkdir()
    found = speed.checkouts([f"mma={tmp_path / 'elsewhere'}"], tmp_path)
    assert found == {"coop": tmp_path / "coop", "mpl": tmp_path / "mpl", "mma": tmp_path / "elsewhere"}
