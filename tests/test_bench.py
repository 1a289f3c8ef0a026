"""The benchmark command at smoke-test size: every method, fast and slow paths, one table."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_prints_one_row_per_method_and_variant(tmp_path):
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--classes", "4", "--batch", "2", "--eval-batch", "4", "--steps", "1",
         "--warmup", "0", "--loader", "--threads", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())
    seen = {(r["method"], r["variant"]) for r in rows}
    methods = {"ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "TCP", "SEP", "MPL"}
    assert seen == {(m, v) for m in methods for v in ("fast", "slow", "fast+loader")}
    assert all(r["eval_images_per_s"] > 0 for r in rows)
    assert all((r["train_ms"] is None) == (r["method"] == "ZeroshotCLIP" or r["variant"] == "fast+loader") for r in rows)
    assert "| method | variant | classes | batch | train ms/step | eval images/s | peak MiB |" in result.stdout
