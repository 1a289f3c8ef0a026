"""Faults and bad data through train.py: resume after a kill, determinism, bad images, no overwrite."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl

pytestmark = requires_dassl
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    make_tiny_dataset(str(root), "Caltech101", num_classes=4, images_per_class=24)
    return root


def command(data_root, out, clip_path, *extra, flags=()):
    return [
        sys.executable, "train.py", *flags, "--root", str(data_root), "--trainer", "CoOp", "--seed", "3",
        "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/CoOp/vit_b16_ep50.yaml", "--output-dir", str(out),
        "MODEL.BACKBONE.NAME", clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "1", "TRAIN.CHECKPOINT_FREQ", "1", "OPTIM.MAX_EPOCH", "3", *extra,
    ]


def run(cmd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore::UserWarning"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)


def final_state(out):
    return torch.load(out / "model" / "model.pth.tar-3", weights_only=True)


def test_killed_run_resumes_to_the_same_weights_and_accuracy(data_root, tmp_path, tiny_clip_path):
    straight = tmp_path / "straight"
    assert run(command(data_root, straight, tiny_clip_path)).returncode == 0

    killed = tmp_path / "killed"
    cmd = command(data_root, killed, tiny_clip_path)
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = killed / "model" / "model.pth.tar-1"
    deadline = time.time() + 120
    while not first.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # in the middle of epoch 2
    process.wait()
    assert first.exists() and not (killed / "result.json").exists(), "the kill came too late to test resuming"

    resumed = run(cmd)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resumed from" in resumed.stdout

    a, b = final_state(straight), final_state(killed)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    result = lambda out: json.loads((out / "result.json").read_text())["metrics"]  # noqa: E731
    assert result(straight) == result(killed)


def test_same_seed_same_weights_other_seed_differs(data_root, tmp_path, tiny_clip_path):
    outs = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        out = tmp_path / name
        cmd = command(data_root, out, tiny_clip_path, "OPTIM.MAX_EPOCH", "3", "DATASET.NUM_SHOTS", "4")
        cmd[cmd.index("--seed") + 1] = seed
        assert run(cmd).returncode == 0
        outs.append(final_state(out)["state_dict"]["ctx"])
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def corrupt_a_training_image(data_root):
    split = json.loads((data_root / "caltech-101" / "split_zhou_Caltech101.json").read_text())
    path = data_root / "caltech-101" / "101_ObjectCategories" / split["train"][0][0]
    path.write_bytes(b"not an image")
    return path


def test_unreadable_image_stops_with_its_path(data_root, tmp_path, tiny_clip_path):
    bad = corrupt_a_training_image(data_root)
    result = run(command(data_root, tmp_path / "out", tiny_clip_path, "OPTIM.MAX_EPOCH", "1"))
    assert result.returncode == 2
    assert f"error: Cannot read image {bad}" in result.stderr and "SKIP_BAD_IMAGES" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_image_is_skipped_when_asked(data_root, tmp_path, tiny_clip_path):
    bad = corrupt_a_training_image(data_root)
    cmd = command(data_root, tmp_path / "out", tiny_clip_path, "OPTIM.MAX_EPOCH", "1", "DATALOADER.SKIP_BAD_IMAGES", "True")
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Skipping unreadable image {bad}" in result.stderr


def test_missing_images_are_named(data_root, tmp_path, tiny_clip_path):
    split = json.loads((data_root / "caltech-101" / "split_zhou_Caltech101.json").read_text())
    gone = [data_root / "caltech-101" / "101_ObjectCategories" / row[0] for row in split["test"][3:5]]
    for path in gone:
        path.unlink()
    result = run(command(data_root, tmp_path / "out", tiny_clip_path))
    assert result.returncode == 2
    assert "2 of" in result.stderr and all(str(p) in result.stderr for p in gone)


def test_finished_run_is_not_overwritten(data_root, tmp_path, tiny_clip_path):
    out = tmp_path / "out"
    cmd = command(data_root, out, tiny_clip_path, "OPTIM.MAX_EPOCH", "1")
    assert run(cmd).returncode == 0
    before = (out / "result.json").read_text()
    again = run(cmd)
    assert again.returncode == 2 and "already holds a finished run" in again.stderr and "--overwrite" in again.stderr
    assert (out / "result.json").read_text() == before
    forced = run(command(data_root, out, tiny_clip_path, "OPTIM.MAX_EPOCH", "1", flags=["--overwrite"]))
    assert forced.returncode == 0 and "removed the previous result" in forced.stdout
    assert "No checkpoint found, train from scratch" in forced.stdout
