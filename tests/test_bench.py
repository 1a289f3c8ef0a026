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
               "PromptSRC", "MMA", "MMRL", "MMRLpp", "CoPrompt", "HiCroPL", "PromptKD", "CoOp_DePT", "CoCoOp_DePT", "KgCoOp_DePT",
               "MaPLe_DePT"}
    expected = {(m, v, 4) for m in methods for v in ("fast", "slow")}
    expected -= {("CoCoOp", "slow", 4), ("MPL", "slow", 4), ("CoCoOp_DePT", "slow", 4)}  # above --conditioned-slow-max-classes
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


def run_comparison(script: str, *args: str) -> int:
    """`python bench/compare/<script> ARGS` in this process (its imports are the tests' own: torch,
    the models): its exit status."""
    import runpy

    folder = str(REPO / "bench" / "compare")
    argv, path, had_common = sys.argv, list(sys.path), "common" in sys.modules
    sys.argv, sys.path[:0] = [script, *args], [folder]  # as `python script` puts the script's folder first
    try:
        runpy.run_path(f"{folder}/{script}", run_name="__main__")
        return 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv, sys.path[:] = argv, path
        if not had_common:  # the scripts' `common`: no other module may find it under that name
            sys.modules.pop("common", None)


COMPARISONS = sorted(p.name for p in (REPO / "bench" / "compare").glob("*.py") if p.name != "common.py")


@pytest.mark.parametrize("script", COMPARISONS)
def test_every_comparison_script_imports_and_explains_itself(script, capsys):
    """Each script runs as far as --help (its imports from common and the models hold), and every
    method's script offers --speed."""
    assert run_comparison(script, "--help") == 0
    assert script == "speed.py" or "--speed" in capsys.readouterr().out


@pytest.mark.parametrize("script", ["cocoop.py", "sep.py", "promptsrc.py", "mmrlpp.py"])
def test_comparisons_refuse_a_path_that_is_not_the_authors_checkout(tmp_path, script, capsys):
    assert run_comparison(script, str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert err.startswith(f"error: {tmp_path}") and "is not the checkout this script compares with" in err


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
