"""The benchmarks: one timing helper, random CLIPs of any shape, and the benchmark command at smoke-test size."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clipprompt.backbones.random_clip import PRESETS, build_random_clip

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from timing import Timing, time_ms  # noqa: E402


def test_time_ms_warms_up_then_takes_the_median_and_spread():
    calls = []
    timing = time_ms(lambda: calls.append(1), "cpu", runs=5, warmup=2)
    assert len(calls) == 7 and timing.runs == 5
    assert timing.min_ms <= timing.median_ms <= timing.max_ms
    assert Timing(10.0, 9.0, 12.0, 3).spread == 0.3 and Timing(10.0, 9.0, 12.0, 3).per_second(5) == 500.0


def test_bench_prints_readmes_table_for_every_method(tmp_path):
    out = tmp_path / "rows.json"
    small = ["--batch", "2", "--eval-batch", "4", "--steps", "1", "--conditioned-batch", "2",
             "--conditioned-eval-batch", "2", "--conditioned-steps", "1", "--warmup", "0"]
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--classes", "4", *small, "--conditioned-slow-max-classes", "3",
         "--loader", "--threads", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())
    seen = {(r["method"], r["variant"], r["classes"]) for r in rows}
    methods = {"ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "ProGrad", "TCP", "SEP", "MPL", "VPT", "IVLP", "MaPLe",
               "PromptSRC", "MMA", "MMRL", "PromptKD", "CoOp_DePT", "KgCoOp_DePT", "MaPLe_DePT"}
    expected = {(m, v, 4) for m in methods for v in ("fast", "slow")}
    expected -= {("CoCoOp", "slow", 4), ("MPL", "slow", 4)}  # above --conditioned-slow-max-classes
    expected |= {(m, "fast+loader", 4) for m in methods}
    assert seen == expected
    assert all(r["eval_images_per_s"] > 0 for r in rows)
    assert all((r["train_ms"] is None) == (r["method"] == "ZeroshotCLIP" or r["variant"] == "fast+loader") for r in rows)
    assert "| method | classes | batch | train ms/step fast | slow | eval images/s fast | slow | spread |" in result.stdout
    assert result.stdout.split("| MPL | 4 | 2 |")[1].split("\n")[0].count("–") == 2  # slow: not run


def test_random_clip_of_a_shape_is_the_presets_clip():
    """bench/compare builds CLIPs of their own shapes; a preset's shape gives that preset's weights."""
    by_name, by_shape = build_random_clip("tiny", seed=3), build_random_clip(PRESETS["tiny"], seed=3)
    assert by_name.state_dict().keys() == by_shape.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(by_name.state_dict().values(), by_shape.state_dict().values()))
    with pytest.raises(ValueError, match="Unknown preset 'huge'; choose from tiny, "):
        build_random_clip("huge")


@pytest.mark.parametrize("script", ["cocoop.py", "sep.py", "promptsrc.py"])
def test_comparisons_refuse_a_path_that_is_not_the_authors_checkout(tmp_path, script):
    result = subprocess.run([sys.executable, f"bench/compare/{script}", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith(f"error: {tmp_path}") and "is not the checkout this script compares with" in result.stderr


def test_side_by_side_times_both_interleaved_and_prints_the_ratio(capsys):
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("compare_common", REPO / "bench" / "compare" / "common.py")
    common = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = common  # as an import would (its dataclass looks itself up there)
    spec.loader.exec_module(common)
    calls = []
    timed = common.side_by_side({"step": (lambda: (calls.append("theirs"), time.sleep(0.04)),
                                          lambda: (calls.append("ours"), time.sleep(0.01)))}, runs=3)
    # a warm-up, then 3 interleaved runs, who goes first alternating
    assert calls == ["theirs", "ours", "theirs", "ours", "ours", "theirs", "theirs", "ours"]
    step = timed["step"]
    assert step.ratio > 1.5 and step.fastest_ratio > 1.5 and step.theirs > step.ours > 0
    out = capsys.readouterr().out
    assert "authors' time / ours" in out and f"ratio {step.ratio:.2f}" in out and "fastest runs" in out
