"""A tiny base-to-new sweep run serially through the protocol driver (CoOp seeds 1 2, then zero-shot),
made once per test session: the reference every launcher must reproduce, and the helpers that
drive sweeps in the tests."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from clipprompt.testing import make_tiny_dataset
from conftest import built_once

REPO = Path(__file__).resolve().parent.parent


@dataclass
class TinySweep:
    data: Path  # the tiny Caltech101's root
    output: Path  # the serial sweep's run folders
    report: str  # `python -m clipprompt.report output`, less the lines naming the folder
    driver_output: str  # what the driver printed for CoOp
    clip: str  # the CLIP file it ran with (a run's identity holds its path: running again needs the same)


OVERRIDES = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "8",
             "OPTIM.MAX_EPOCH", "1"]


def sweep_env(data, output):
    return {**os.environ, "DATA": str(data), "OUTPUT": str(output), "SHOTS": "2",
            "PYTHON": sys.executable, "PYTHONWARNINGS": "ignore::UserWarning"}


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, tiny_clip_path):
    """Tiny data, and the report of base-to-new for CoOp (seeds 1 2) and zero-shot run serially:
    what every launcher must reproduce. Made once per session, whichever test (or test worker) asks first."""
    def build(root):
        make_sweep_data(root / "data")
        env = sweep_env(root / "data", root / "serial")
        for name, args in (("coop", ["base2new", "coop", "--datasets", "caltech101", "--seeds", "1", "2"]),
                           ("zeroshot", ["base2new", "zeroshot", "--datasets", "caltech101"])):
            run = subprocess.run(driver(args, env, tiny_clip_path), cwd=REPO, env=env, capture_output=True,
                                 text=True, timeout=900)
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
            (root / f"{name}.out").write_text(run.stdout)
        (root / "report.txt").write_text(report(root / "serial"))
        (root / "clip.txt").write_text(tiny_clip_path)

    root = built_once(tmp_path_factory, "tiny_sweep", build)
    return TinySweep(root / "data", root / "serial", (root / "report.txt").read_text(),
                     (root / "coop.out").read_text(), (root / "clip.txt").read_text())


def make_sweep_data(root):
    """The sweep's tiny Caltech101: a launcher test that runs its own sweep on it while the serial one
    is built elsewhere gets the same report."""
    make_tiny_dataset(str(root), "Caltech101", num_classes=6, images_per_class=6)
    return root


def driver(args, env, clip):
    return [sys.executable, "-m", "clipprompt.protocol", *args, "--", "MODEL.BACKBONE.NAME", clip, *OVERRIDES]


def status(output, *extra):
    run = subprocess.run([sys.executable, "-m", "clipprompt.protocol", "status", str(output), *extra], cwd=REPO,
                         capture_output=True, text=True)
    return run.returncode, run.stdout, run.stderr


def wait_for(condition, timeout=240, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def report(output):
    run = subprocess.run([sys.executable, "-m", "clipprompt.report", str(output)], cwd=REPO, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    return "\n".join(line for line in run.stdout.splitlines() if str(output) not in line)
