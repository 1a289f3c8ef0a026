"""Run the protocol scripts on tiny data in tests: the script decides the train.py command
(`DRY_RUN=1` prints it), and train.py's `cli` runs it in this process, without a fresh interpreter's
start-up (about 4 s of imports on 2 cores). The real bash -> train.py path is the same for every
script (scripts/common/lib.sh's `train_py`) and is run for real by the protocol and sweep tests.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from .tiny_datasets import make_tiny_dataset, make_tiny_descriptions

REPO = Path(__file__).resolve().parents[2]
TINY_OVERRIDES = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "8"]


def script_commands(script: str, *args: str, env: dict) -> list[list[str]]:
    """The train.py arguments of each command `bash <script> <args>` would run (none when its run is
    finished already), as the script decides them under `env`."""
    run = subprocess.run(["bash", script, *args], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, **env, "DRY_RUN": "1"})
    assert run.returncode == 0, f"bash {script} failed ({run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
    commands = [shlex.split(line) for line in run.stdout.splitlines() if " train.py " in line]
    assert all(words[1] == "train.py" for words in commands), run.stdout
    return [words[2:] for words in commands]


def train_in_process(argv: list[str]) -> int:
    """`python train.py <argv>` in this process, from the repository (the scripts' paths are relative
    to it); its exit status. The repository must be on sys.path (pytest.ini's `pythonpath`)."""
    import train

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return train.cli(argv)
    finally:
        os.chdir(cwd)


def run_script(script: str, *args: str, env: dict) -> None:
    """`bash <script> <args>` with each train.py command run in this process; fails on a non-zero status."""
    for argv in script_commands(script, *args, env=env):
        status = train_in_process(argv)
        assert status == 0, f"train.py {shlex.join(argv)} exited with {status}"


def run_base2new_scripts(method: str, trainer: str, workdir: Path, clip_path: str, *overrides: str,
                         epochs: int = 1, descriptions: bool = False) -> dict:
    """`bash scripts/<method>/base2new_train.sh caltech101 1`, then `base2new_test.sh`, on a tiny Caltech101.

    Checks both runs finished with result.json (base classes, then new ones, same trainer) and
    returns the trained checkpoint's `state_dict`; the run folders are under `workdir/out`.
    `descriptions`: the tiny dataset gets class descriptions too (CoPrompt's and HiCroPL's).
    """
    import torch

    workdir = Path(workdir)
    data, out = workdir / "data", workdir / "out"
    make_tiny_dataset(str(data), "Caltech101", num_classes=6, images_per_class=6)
    if descriptions:
        make_tiny_descriptions(str(data), "Caltech101", num_classes=6)
    env = {"DATA": str(data), "OUTPUT": str(out), "SHOTS": "2", "PYTHON": sys.executable}
    args = ["MODEL.BACKBONE.NAME", clip_path, *TINY_OVERRIDES, "OPTIM.MAX_EPOCH", str(epochs), *overrides]
    for step in ("base2new_train", "base2new_test"):
        run_script(f"scripts/{method}/{step}.sh", "caltech101", "1", *args, env=env)
    (train_dir,) = out.glob(f"base2new/train_base/caltech101/shots_2/{trainer}/*/seed1")
    (test_dir,) = out.glob(f"base2new/test_new/caltech101/shots_2/{trainer}/*/seed1")
    base = json.loads((train_dir / "result.json").read_text())
    new = json.loads((test_dir / "result.json").read_text())
    assert base["trainer"] == new["trainer"] == trainer
    assert base["subsample_classes"] == "base" and new["subsample_classes"] == "new" and new["epoch"] == epochs
    checkpoint = train_dir / "model" / f"model.pth.tar-{epochs}"
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
