"""train.py and the protocol scripts end to end, on a tiny Caltech101 and the tiny CLIP (needs Dassl)."""

import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from clipprompt.testing import make_tiny_dataset, protocol_scripts
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


def cli(*args) -> tuple[int, str, str]:
    """`python train.py ARGS` run in this process (its `__main__` block): status, stdout, stderr.

    Used where a fresh process adds nothing (the `__main__` block's `sys.exit(cli())` included); the
    protocol and sweep tests run train.py as a process."""
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["train.py", *args]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(str(REPO / "train.py"), run_name="__main__")
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return status, stdout.getvalue(), stderr.getvalue()


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


def cli_ok(*args) -> str:
    status, out, err = cli(*args)
    assert status == 0, f"train.py failed ({status}):\n{out[-3000:]}\n{err[-3000:]}"
    return out


def expected_accuracy(model, data_root, trainer_cfg_path, subsample="all") -> float:
    """The accuracy of `model` on the test split, computed here: our split reader, Dassl's test transform."""
    import torch
    from PIL import Image
    from dassl.data.transforms import build_transform

    from clipprompt.config import add_project_config, merge_from_file, merge_from_list
    from clipprompt.data import build_splits
    from trainers._dassl import get_cfg_default

    cfg = add_project_config(get_cfg_default())
    merge_from_file(cfg, str(REPO / "configs/trainers" / f"{trainer_cfg_path}.yaml"))
    merge_from_list(cfg, TINY)
    transform = build_transform(cfg, is_train=False)
    records = build_splits("Caltech101", data_root, subsample=subsample)["test"]
    images = torch.stack([transform(Image.open(r.impath).convert("RGB")) for r in records])
    labels = torch.tensor([r.label for r in records])
    model.eval()
    with torch.no_grad(), model.cached_text_features():
        predictions = model(images).argmax(dim=-1)
    return (predictions == labels).float().mean().item() * 100


def test_coop_trains_saves_and_eval_only_reproduces(data_root, tmp_path):
    from clipprompt.backbones.loading import load_clip
    from clipprompt.models import CoOp
    from clipprompt.models.coop import CoOpOptions

    out = tmp_path / "coop"
    stdout = cli_ok(*common(data_root, "CoOp", "CoOp/vit_b16_ep50", out, "OPTIM.MAX_EPOCH", "2", "DATASET.NUM_SHOTS", "2"))
    assert "* accuracy:" in stdout
    assert sorted(os.listdir(out / "model")) == ["checkpoint", "model.pth.tar-2"]
    trained = metrics(out)
    assert trained["trainer"] == "CoOp" and trained["num_classes"] == 6 and trained["epoch"] == 2
    assert "TRAINER:" in trained["config"]

    # the reported accuracy is the trained weights' on the test split, computed independently here
    import torch

    model = CoOp(load_clip(TINY_CLIP[0]), metrics_classnames(data_root), CoOpOptions())
    model.load_trainable_state_dict(torch.load(out / "model" / "model.pth.tar-2", weights_only=True)["state_dict"])
    expected = expected_accuracy(model, data_root, "CoOp/vit_b16_ep50")
    assert trained["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-6)

    evaluated = tmp_path / "coop_eval"
    cli_ok(*common(data_root, "CoOp", "CoOp/vit_b16_ep50", evaluated, "DATASET.NUM_SHOTS", "2",
                   flags=["--eval-only", "--model-dir", str(out), "--load-epoch", "2"]))
    assert metrics(evaluated)["metrics"] == trained["metrics"]


def test_each_epoch_leaves_a_summary_line_and_the_cpu_precision_notice_is_said_once(data_root, tmp_path):
    """The shipped config asks for fp16, which a CPU cannot do: one plain notice, no Python warning."""
    import re
    import warnings

    out = tmp_path / "coop"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stdout = cli_ok(*common(data_root, "CoOp", "CoOp/vit_b16_ep50", out, "OPTIM.MAX_EPOCH", "2",
                                "DATASET.NUM_SHOTS", "2"))
    log = (out / "log.txt").read_text()
    for text in (stdout, log):
        summaries = re.findall(r"^epoch (\d)/2 done: loss \d+(?:\.\d+)?, acc \d+\.\d%, lr [\d.e-]+, 0:00:\d\d$",
                               text, re.M)
        assert summaries == ["1", "2"], text[-3000:]
        notice = "Note: PREC fp16 needs a CUDA device; running in fp32 on cpu instead"
        assert text.count(notice) == 1 and re.search(f"^{notice}", text, re.M)
    assert not [w for w in caught if "CUDA" in str(w.message)], [str(w.message) for w in caught]


def metrics_classnames(data_root, subsample="all"):
    from clipprompt.data import build_splits

    return build_splits("Caltech101", data_root, subsample=subsample)["classnames"]


def test_zeroshot_accuracy_is_clips_on_the_test_split(data_root, tmp_path):
    from clipprompt.backbones.loading import load_clip
    from clipprompt.data import CATALOG
    from clipprompt.models import ZeroshotCLIP

    cli_ok(*common(data_root, "ZeroshotCLIP", "ZeroshotCLIP/vit_b16", tmp_path / "zs", flags=["--eval-only"]))
    result = metrics(tmp_path / "zs")
    model = ZeroshotCLIP(load_clip(TINY_CLIP[0]), metrics_classnames(data_root), template=CATALOG["Caltech101"].template)
    assert result["trainer"] == "ZeroshotCLIP" and result["num_images"] == 12  # 2 test images of each of 6 classes
    assert result["metrics"]["accuracy"] == pytest.approx(expected_accuracy(model, data_root, "ZeroshotCLIP/vit_b16"), abs=1e-6)


@pytest.mark.parametrize("trainer, flags, extra, message", [
    ("CoOP", [], [], "error: Unknown trainer 'CoOP' (--trainer); did you mean CoOp? This project's trainers: CoCoOp, "),
    ("CoOp", [], ["TRAINER.COOP.NCTX", "4"], "Did you mean TRAINER.COOP.N_CTX?"),
    ("CoOp", [], ["INPUT.SIZE", "(224, 224)"], 'INPUT.SIZE (224, 224) does not match the backbone\'s input resolution 32; set INPUT.SIZE "(32, 32)"'),
    ("CoOp", ["--eval-only", "--model-dir", "/nonexistent", "--load-epoch", "3"], [], "No checkpoint of epoch 3 in /nonexistent/model"),
    ("CoOp", [], ["DATASET.NAME", "Caltech102"], "Unknown dataset 'Caltech102'"),
    ("CoOp", [], ["TRAINER.COOP.N_CTX", "0"], "error: TRAINER.COOP.N_CTX is 0; it must be >= 1."),
    ("CoOp", [], ["MODEL.INIT_WEIGHTS", "weights.pth"], "error: MODEL.INIT_WEIGHTS is not supported"),
])
def test_bad_input_gives_one_line_and_status_2(data_root, tmp_path, trainer, flags, extra, message):
    status, _, stderr = cli(*common(data_root, trainer, "CoOp/vit_b16_ep50", tmp_path / "bad", *extra, flags=flags))
    assert status == 2, stderr[-2000:]
    assert message in stderr
    assert "Traceback" not in stderr


def test_load_epoch_without_eval_only_is_refused(data_root, tmp_path):
    """Dassl's train.py reads --load-epoch only with --eval-only; a training run would ignore it."""
    status, stdout, stderr = cli(*common(data_root, "CoOp", "CoOp/vit_b16_ep50", tmp_path / "out",
                                         flags=["--load-epoch", "3"]))
    assert status == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == [
        "error: --load-epoch 3 applies only with --eval-only (it picks the checkpoint to evaluate); without "
        "--eval-only the run trains, resuming from its latest checkpoint by itself."
    ]
    assert "Loading CLIP" not in stdout and not (tmp_path / "out").exists()


def fake_run(folder, state_dict, trainer="CoOp"):
    from clipprompt.runs.checkpoint import save_checkpoint

    save_checkpoint(folder / "model", {"state_dict": state_dict, "epoch": 1, "trainer": trainer}, 1)


@pytest.mark.parametrize("case, message", [
    ("backbone", "is neither a CLIP model name nor an existing file"),
    ("truncated", "the file is truncated, corrupt, or not one of ours"),
    ("other_trainer", "was saved by trainer CoCoOp, not CoOp"),
    ("other_shape", "shape mismatch ctx: checkpoint (3, 128) vs model (16, 128)"),
    ("not_ours", "model.pth.tar-1 is not a checkpoint of this project (no 'state_dict' entry)."),
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
    elif case == "not_ours":
        (model_dir / "model").mkdir(parents=True)
        torch.save({"weights": torch.zeros(16, 128)}, model_dir / "model" / "model.pth.tar-1")
    elif case == "other_trainer":
        fake_run(model_dir, {"ctx": torch.zeros(16, 128)}, trainer="CoCoOp")
    else:
        fake_run(model_dir, {"ctx": torch.zeros(3, 128)})
    flags = [] if case == "backbone" else ["--eval-only", "--model-dir", str(model_dir)]
    status, _, stderr = cli(*common(data_root, "CoOp", "CoOp/vit_b16_ep50", tmp_path / "out", *extra, flags=flags))
    assert status == 2, stderr[-2000:]
    assert message in stderr and "Traceback" not in stderr


def test_missing_dataset_folder_names_the_path(tmp_path, tiny_clip_path):
    status, _, stderr = cli(*common(str(tmp_path), "CoOp", "CoOp/vit_b16_ep50", tmp_path / "out"))
    assert status == 2
    assert str(tmp_path / "caltech-101") in stderr and "DATASETS.md" in stderr


def run_script(script, *args, env_extra=None):
    env = {**os.environ, **(env_extra or {}), "PYTHON": sys.executable, "PYTHONWARNINGS": "ignore::UserWarning"}
    return subprocess.run(["bash", script, *args], cwd=REPO, capture_output=True, text=True, env=env)


@pytest.mark.parametrize("method, trainer", [("sep", "SEP"), ("mpl", "MPL"), ("coop", "CoOp"), ("cocoop", "CoCoOp")])
def test_method_base2new_scripts(data_root, tmp_path, method, trainer):
    """The issue's commands: `bash scripts/<method>/base2new_train.sh caltech101 1 <overrides>`, then test,
    each train.py command (as the script prints it) run in-process; the protocol and sweep tests run
    the same bash -> train.py path for real."""
    env = {"DATA": data_root, "OUTPUT": str(tmp_path), "SHOTS": "1"}
    overrides = ["MODEL.BACKBONE.NAME", TINY_CLIP[0], *TINY, "OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "2"]
    for step in ("base2new_train", "base2new_test"):
        protocol_scripts.run_script(f"scripts/{method}/{step}.sh", "caltech101", "1", *overrides,
                                    env={**env, "PYTHON": sys.executable})
    (base,) = tmp_path.glob(f"base2new/train_base/caltech101/shots_1/{trainer}/*/seed1/result.json")
    (new,) = tmp_path.glob(f"base2new/test_new/caltech101/shots_1/{trainer}/*/seed1/result.json")
    assert base.parent.parent.name == new.parent.parent.name  # the same config folder
    assert metrics(base.parent)["subsample_classes"] == "base" and metrics(new.parent)["subsample_classes"] == "new"
    assert metrics(base.parent)["num_classes"] == metrics(new.parent)["num_classes"] == 3
    assert metrics(new.parent)["epoch"] == 1 and metrics(new.parent)["trainer"] == trainer
    # the wrappers call scripts/common/: a finished folder is skipped
    again = run_script(f"scripts/{method}/base2new_train.sh", "caltech101", "1", *overrides,
                       env_extra={**env, "DRY_RUN": "1"})
    assert again.returncode == 0 and "Skipping" in again.stdout and "train.py" not in again.stdout


def test_script_usage_error():
    run = run_script("scripts/common/base2new_train.sh", "CoOp")
    assert run.returncode == 2 and "usage: bash scripts/common/base2new_train.sh TRAINER CFG DATASET SEED" in run.stderr
    run = run_script("scripts/sep/base2new_test.sh")
    assert run.returncode == 2 and "usage: bash scripts/sep/base2new_test.sh DATASET SEED [KEY VALUE ...]" in run.stderr
