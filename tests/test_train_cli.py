"""train.py and the protocol scripts end to end, on a tiny Caltech101 and the tiny CLIP (needs Dassl)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl

pytestmark = requires_dassl

REPO = Path(__file__).resolve().parent.parent
TINY = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "8"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_tiny_dataset(str(root), "Caltech101", num_classes=6, images_per_class=6)
    return str(root)


def train_py(*args, check=True):
    env = {**os.environ, "PYTHONWARNINGS": "ignore::UserWarning"}
    result = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def common(data_root, trainer, config, output, *extra, flags=()):
    """train.py arguments: flags first, then KEY VALUE overrides (argparse takes the rest as overrides)."""
    return [
        *flags, "--root", data_root, "--trainer", trainer, "--seed", "1",
        "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", f"configs/trainers/{config}.yaml",
        "--output-dir", str(output), "MODEL.BACKBONE.NAME", TINY_CLIP[0], *TINY, *extra,
    ]


TINY_CLIP = []


@pytest.fixture(scope="module", autouse=True)
def _tiny_clip(tiny_clip_path):
    TINY_CLIP[:] = [tiny_clip_path]


def metrics(folder):
    return json.loads((Path(folder) / "result.json").read_text())


def test_coop_trains_saves_and_eval_only_reproduces(data_root, tmp_path):
    out = tmp_path / "coop"
    run = train_py(*common(data_root, "CoOp", "CoOp/vit_b16_ep50", out, "OPTIM.MAX_EPOCH", "2", "DATASET.NUM_SHOTS", "2"))
    assert "* accuracy:" in run.stdout
    assert sorted(os.listdir(out / "model")) == ["checkpoint", "model.pth.tar-2"]
    trained = metrics(out)
    assert trained["trainer"] == "CoOp" and trained["num_classes"] == 6 and trained["epoch"] == 2
    assert "TRAINER:" in trained["config"]

    evaluated = tmp_path / "coop_eval"
    train_py(*common(data_root, "CoOp", "CoOp/vit_b16_ep50", evaluated, "DATASET.NUM_SHOTS", "2",
                     flags=["--eval-only", "--model-dir", str(out), "--load-epoch", "2"]))
    assert metrics(evaluated)["metrics"] == trained["metrics"]


@pytest.mark.parametrize("trainer, config, flags, extra", [
    ("ZeroshotCLIP", "ZeroshotCLIP/vit_b16", ["--eval-only"], []),
    ("CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1", [], ["OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "1"]),
])
def test_baselines_run(data_root, tmp_path, trainer, config, flags, extra):
    train_py(*common(data_root, trainer, config, tmp_path / trainer, *extra, flags=flags))
    result = metrics(tmp_path / trainer)
    assert result["trainer"] == trainer and 0 <= result["metrics"]["accuracy"] <= 100


@pytest.mark.parametrize("trainer, flags, extra, message", [
    ("CoOP", [], [], "error: Unknown trainer 'CoOP' (--trainer); registered: "),
    ("CoOp", [], ["TRAINER.COOP.NCTX", "4"], "Did you mean TRAINER.COOP.N_CTX?"),
    ("CoOp", [], ["INPUT.SIZE", "(224, 224)"], 'INPUT.SIZE (224, 224) does not match the backbone\'s input resolution 32; set INPUT.SIZE "(32, 32)"'),
    ("CoOp", ["--eval-only", "--model-dir", "/nonexistent", "--load-epoch", "3"], [], "No checkpoint of epoch 3 in /nonexistent/model"),
    ("CoOp", [], ["DATASET.NAME", "Caltech102"], "Unknown dataset 'Caltech102'"),
])
def test_bad_input_gives_one_line_and_status_2(data_root, tmp_path, trainer, flags, extra, message):
    run = train_py(*common(data_root, trainer, "CoOp/vit_b16_ep50", tmp_path / "bad", *extra, flags=flags), check=False)
    assert run.returncode == 2, run.stderr[-2000:]
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def fake_run(folder, state_dict, trainer="CoOp"):
    from clipprompt.checkpoint import save_checkpoint

    save_checkpoint(folder / "model", {"state_dict": state_dict, "epoch": 1, "trainer": trainer}, 1)


@pytest.mark.parametrize("case, message", [
    ("backbone", "is neither a CLIP model name nor an existing file"),
    ("truncated", "the file is truncated, corrupt, or not one of ours"),
    ("other_trainer", "was saved by trainer CoCoOp, not CoOp"),
    ("other_shape", "shape mismatch ctx: checkpoint (3, 128) vs model (16, 128)"),
])
def test_unusable_backbone_or_checkpoint(data_root, tmp_path, case, message):
    import torch

    model_dir = tmp_path / "trained"
    extra = []
    if case == "backbone":
        extra = ["MODEL.BACKBONE.NAME", str(tmp_path / "missing.pt")]
    elif case == "truncated":
        fake_run(model_dir, {"ctx": torch.zeros(16, 128)})
        path = model_dir / "model" / "model.pth.tar-1"
        path.write_bytes(path.read_bytes()[:200])
    elif case == "other_trainer":
        fake_run(model_dir, {"ctx": torch.zeros(16, 128)}, trainer="CoCoOp")
    else:
        fake_run(model_dir, {"ctx": torch.zeros(3, 128)})
    flags = [] if case == "backbone" else ["--eval-only", "--model-dir", str(model_dir)]
    run = train_py(*common(data_root, "CoOp", "CoOp/vit_b16_ep50", tmp_path / "out", *extra, flags=flags), check=False)
    assert run.returncode == 2, run.stderr[-2000:]
    assert message in run.stderr and "Traceback" not in run.stderr


def test_missing_dataset_folder_names_the_path(tmp_path, tiny_clip_path):
    run = train_py(*common(str(tmp_path), "CoOp", "CoOp/vit_b16_ep50", tmp_path / "out"), check=False)
    assert run.returncode == 2
    assert str(tmp_path / "caltech-101") in run.stderr and "DATASETS.md" in run.stderr


def test_datasets_import_dassl_without_its_side_effect_and_no_trainer():
    """A fresh process: `import datasets` loads Dassl (logging left on) but no trainer module."""
    code = "import logging, sys, datasets; print(logging.root.manager.disable, sorted(m for m in sys.modules if m.split('.')[0] == 'trainers'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0 []"


def run_script(script, *args, env_extra=None):
    env = {**os.environ, **(env_extra or {}), "PYTHON": sys.executable, "PYTHONWARNINGS": "ignore::UserWarning"}
    return subprocess.run(["bash", script, *args], cwd=REPO, capture_output=True, text=True, env=env)


@pytest.mark.parametrize("trainer, config", [("CoOp", "vit_b16_ep50")])
def test_common_base2new_scripts(data_root, tmp_path, trainer, config):
    env = {"DATA": data_root, "OUTPUT": str(tmp_path), "SHOTS": "2"}
    overrides = ["MODEL.BACKBONE.NAME", TINY_CLIP[0], *TINY, "OPTIM.MAX_EPOCH", "1"]
    train = run_script("scripts/common/base2new_train.sh", trainer, config, "caltech101", "1", *overrides, env_extra=env)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    base_dir = tmp_path / f"base2new/train_base/caltech101/shots_2/{trainer}/{config}/seed1"
    assert metrics(base_dir)["num_classes"] == 3 and metrics(base_dir)["subsample_classes"] == "base"

    test = run_script("scripts/common/base2new_test.sh", trainer, config, "caltech101", "1", *overrides, env_extra=env)
    assert test.returncode == 0, test.stdout[-2000:] + test.stderr[-2000:]
    new = metrics(tmp_path / f"base2new/test_new/caltech101/shots_2/{trainer}/{config}/seed1")
    assert new["subsample_classes"] == "new" and new["num_classes"] == 3 and new["epoch"] == 1

    again = run_script("scripts/common/base2new_train.sh", trainer, config, "caltech101", "1", *overrides, env_extra=env)
    assert again.returncode == 0 and "Skipping" in again.stdout


@pytest.mark.parametrize("method, trainer", [("sep", "SEP"), ("mpl", "MPL"), ("coop", "CoOp"), ("cocoop", "CoCoOp")])
def test_method_base2new_scripts(data_root, tmp_path, method, trainer):
    """The issue's commands: `bash scripts/<method>/base2new_train.sh caltech101 1 <overrides>`, then test."""
    env = {"DATA": data_root, "OUTPUT": str(tmp_path), "SHOTS": "1"}
    overrides = ["MODEL.BACKBONE.NAME", TINY_CLIP[0], *TINY, "OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "2"]
    for step in ("base2new_train", "base2new_test"):
        run = run_script(f"scripts/{method}/{step}.sh", "caltech101", "1", *overrides, env_extra=env)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (base,) = tmp_path.glob(f"base2new/train_base/caltech101/shots_1/{trainer}/*/seed1/result.json")
    (new,) = tmp_path.glob(f"base2new/test_new/caltech101/shots_1/{trainer}/*/seed1/result.json")
    assert base.parent.parent.name == new.parent.parent.name  # the same config folder
    assert metrics(base.parent)["subsample_classes"] == "base" and metrics(new.parent)["subsample_classes"] == "new"
    assert metrics(new.parent)["epoch"] == 1 and metrics(new.parent)["trainer"] == trainer


def test_script_usage_error():
    run = run_script("scripts/common/base2new_train.sh", "CoOp")
    assert run.returncode == 2 and "usage: bash scripts/common/base2new_train.sh TRAINER CFG DATASET SEED" in run.stderr
    run = run_script("scripts/sep/base2new_test.sh")
    assert run.returncode == 2 and "usage: bash scripts/sep/base2new_test.sh DATASET SEED [KEY VALUE ...]" in run.stderr
