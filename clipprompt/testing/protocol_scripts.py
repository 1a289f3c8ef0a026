"""Run a method's base-to-new wrapper scripts end to end on tiny data (for tests of new trainers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .tiny_datasets import make_tiny_dataset

REPO = Path(__file__).resolve().parents[2]
TINY_OVERRIDES = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "8"]


def run_base2new_scripts(method: str, trainer: str, workdir: Path, clip_path: str, *overrides: str, epochs: int = 1) -> dict:
    """`bash scripts/<method>/base2new_train.sh caltech101 1`, then `base2new_test.sh`, on a tiny Caltech101.

    Checks both runs finished with result.json (base classes, then new ones, same trainer) and
    returns the trained checkpoint's `state_dict`.
    """
    import torch

    workdir = Path(workdir)
    data, out = workdir / "data", workdir / "out"
    make_tiny_dataset(str(data), "Caltech101", num_classes=6, images_per_class=6)
    env = {**os.environ, "DATA": str(data), "OUTPUT": str(out), "SHOTS": "2",
           "PYTHON": sys.executable, "PYTHONWARNINGS": "ignore::UserWarning"}
    args = ["MODEL.BACKBONE.NAME", clip_path, *TINY_OVERRIDES, "OPTIM.MAX_EPOCH", str(epochs), *overrides]
    for step in ("base2new_train", "base2new_test"):
        run = subprocess.run(["bash", f"scripts/{method}/{step}.sh", "caltech101", "1", *args],
                             cwd=REPO, capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (train_dir,) = out.glob(f"base2new/train_base/caltech101/shots_2/{trainer}/*/seed1")
    (test_dir,) = out.glob(f"base2new/test_new/caltech101/shots_2/{trainer}/*/seed1")
    base = json.loads((train_dir / "result.json").read_text())
    new = json.loads((test_dir / "result.json").read_text())
    assert base["trainer"] == new["trainer"] == trainer
    assert base["subsample_classes"] == "base" and new["subsample_classes"] == "new" and new["epoch"] == epochs
    checkpoint = train_dir / "model" / f"model.pth.tar-{epochs}"
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
