"""Every bad input is one line: the resolved config, config files, the backbone, the output folder, images.

Most cases run train.py's own `setup_cfg` in-process (it ends with `validate_config`); a
representative subset runs `python train.py` to check the exit status 2, the single `error:` line,
no traceback, and that no output folder was created.
"""

import json
import os
import re
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest

from clipprompt.config import merge_from_file, merge_from_list
from clipprompt.errors import ConfigError, UserError
from clipprompt.testing import make_tiny_dataset, make_tiny_descriptions
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import train_in_process

REPO = Path(__file__).resolve().parent.parent
LONG_INIT = " ".join(["a photo"] * 40)  # 80 tokens


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_tiny_dataset(str(root), "Caltech101", num_classes=4, images_per_class=4)
    make_tiny_descriptions(str(root), "Caltech101", num_classes=4)  # CoPrompt's configs read them
    return str(root)


def arguments(data_root, clip_path, out, *overrides, trainer="CoOp", config="CoOp/vit_b16_ep50", flags=()):
    return [
        "--root", data_root, "--trainer", trainer, "--seed", "1",
        "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
        "--config-file", str(REPO / f"configs/trainers/{config}.yaml"),
        "--output-dir", str(out), *flags,
        "MODEL.BACKBONE.NAME", clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", *overrides,
    ]


def setup_cfg(*argv):
    import train

    return train.setup_cfg(train.parse_args(list(argv)))


def input_error(*argv) -> str:
    """The one-line message setup_cfg raises for these arguments."""
    with pytest.raises(UserError) as info:
        setup_cfg(*argv)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---- every validated key family, in-process ---------------------------------------------------

KEY_CASES = [
    # counts and sizes
    (["OPTIM.MAX_EPOCH", "0"], "OPTIM.MAX_EPOCH is 0; it must be >= 1"),
    (["DATALOADER.TRAIN_X.BATCH_SIZE", "0"], "DATALOADER.TRAIN_X.BATCH_SIZE is 0; it must be >= 1"),
    (["DATALOADER.TEST.BATCH_SIZE", "-4"], "DATALOADER.TEST.BATCH_SIZE is -4; it must be >= 1"),
    (["DATALOADER.NUM_WORKERS", "-1"], "DATALOADER.NUM_WORKERS is -1; it must be >= 0"),
    (["TRAIN.PRINT_FREQ", "0"], "TRAIN.PRINT_FREQ is 0; it must be >= 1"),
    (["DATASET.NUM_SHOTS", "0"], "DATASET.NUM_SHOTS is 0; use a number of training images per class >= 1, or -1"),
    (["INPUT.SIZE", "(32,)"], "INPUT.SIZE is [32]; it must have 2 items"),
    (["INPUT.PIXEL_STD", "[0.2, 0.0, 0.2]"], "INPUT.PIXEL_STD is [0.2, 0.0, 0.2]; it must be > 0"),
    # learning rate and optimizer numbers
    (["OPTIM.LR", "0.0"], "OPTIM.LR is 0.0; it must be > 0"),
    (["OPTIM.LR", "-0.1"], "OPTIM.LR is -0.1; it must be > 0"),
    (["OPTIM.LR", "1e999"], "OPTIM.LR is inf; it must be a finite number"),
    (["OPTIM.ADAM_BETA2", "1.0"], "OPTIM.ADAM_BETA2 is 1.0; it must be < 1"),
    (["OPTIM.WEIGHT_DECAY", "-1e-4"], "OPTIM.WEIGHT_DECAY is -0.0001; it must be >= 0"),
    (["OPTIM.WARMUP_CONS_LR", "0.0"], "OPTIM.WARMUP_CONS_LR is 0.0; it must be > 0"),  # the config warms up
    # names, each from the registered list
    (["OPTIM.NAME", "adam_w"], "OPTIM.NAME is 'adam_w'; use one of: adam, amsgrad, sgd, rmsprop, radam, adamw"),
    (["OPTIM.LR_SCHEDULER", "linear"], "OPTIM.LR_SCHEDULER is 'linear'; use one of: cosine, single_step, multi_step"),
    (["OPTIM.WARMUP_TYPE", "exp"], "OPTIM.WARMUP_TYPE is 'exp'; use one of: constant, linear"),
    (["DATALOADER.TRAIN_X.SAMPLER", "Shuffle"], "DATALOADER.TRAIN_X.SAMPLER is 'Shuffle'; use one of: RandomClassSampler"),
    (["INPUT.TRANSFORMS", "['random_flip', 'blur']"], "INPUT.TRANSFORMS has 'blur'; use names from: random_flip"),
    (["INPUT.INTERPOLATION", "cubic"], "INPUT.INTERPOLATION is 'cubic'; use one of: bilinear, bicubic, nearest"),
    (["TEST.EVALUATOR", "Accuracy"], "TEST.EVALUATOR is 'Accuracy'; use one of: Classification"),
    (["TEST.FINAL_MODEL", "best"], "TEST.FINAL_MODEL is 'best'; use one of: last_step, best_val"),
    (["DATASET.SUBSAMPLE_CLASSES", "half"], "DATASET.SUBSAMPLE_CLASSES is 'half'; use one of: all, base, new"),
    (["TRAINER.COOP.PREC", "fp8"], "TRAINER.COOP.PREC is 'fp8'; use one of fp32, fp16, amp, bf16"),
    (["OPTIM.STAGED_LR", "True"], "OPTIM.STAGED_LR is True; use one of: False"),
    (["DATALOADER.K_TRANSFORMS", "2"], "DATALOADER.K_TRANSFORMS is 2; use one of: 1"),
    # what one key cannot say alone
    (["INPUT.TRANSFORMS", "['gaussian_blur']", "INPUT.GB_K", "4"],
     "INPUT.GB_K is 4; gaussian_blur needs an odd kernel size."),
    (["DATALOADER.TRAIN_X.SAMPLER", "RandomClassSampler", "DATALOADER.TRAIN_X.N_INS", "64"],
     "DATALOADER.TRAIN_X.N_INS is 64; RandomClassSampler needs at most DATALOADER.TRAIN_X.BATCH_SIZE (32) images "
     "per class in a batch."),
    (["DATALOADER.TRAIN_X.SAMPLER", "RandomDomainSampler", "DATALOADER.TRAIN_X.N_DOMAIN", "3"],
     "DATALOADER.TRAIN_X.N_DOMAIN is 3; RandomDomainSampler needs it to divide DATALOADER.TRAIN_X.BATCH_SIZE (32)."),
    # empty names
    (["MODEL.BACKBONE.NAME", "''"], "MODEL.BACKBONE.NAME is empty; give a CLIP model name (e.g. ViT-B/16) or a "
     "checkpoint file."),
    (["OUTPUT_DIR", "''"], "OUTPUT_DIR is empty; give an output folder with --output-dir."),
    # the trainer's node, through its registered options class, and CLIP's 77 tokens
    (["TRAINER.COOP.N_CTX", "0"], "TRAINER.COOP.N_CTX is 0; it must be >= 1"),
    (["TRAINER.COOP.N_CTX", "None"], "TRAINER.COOP.N_CTX is None; it must be an integer"),
    (["TRAINER.COOP.N_CTX", "74"], "TRAINER.COOP.N_CTX is 74; a prompt also needs the start and end tokens"),
    (["TRAINER.COOP.CTX_INIT", LONG_INIT], "TRAINER.COOP.CTX_INIT is 80 tokens long"),
    # values of the wrong type
    (["OPTIM.LR", "fast"], "Type mismatch for OPTIM.LR (on the command line): 'fast' is not a number"),
    (["OPTIM.MAX_EPOCH", "2.5"], "Type mismatch for OPTIM.MAX_EPOCH (on the command line): 2.5 is not an integer"),
    (["OPTIM", "3"], "OPTIM is a section of keys, not a value (on the command line)"),
    (["TEST.NO_TEST", "None"], "TEST.NO_TEST is None; it must be True or False"),
    (["OPTIM.MAX_EPOCH", "1", "--eval-only"], "--eval-only comes after the KEY VALUE overrides"),
]


@requires_dassl
@pytest.mark.parametrize("overrides, message", KEY_CASES, ids=[" ".join(c[0])[:40] for c in KEY_CASES])
def test_each_key_family_is_one_line_naming_the_key(data_root, tiny_clip_path, tmp_path, overrides, message):
    out = tmp_path / "out"
    assert message in input_error(*arguments(data_root, tiny_clip_path, out, *overrides))
    assert not out.exists()



def test_a_config_without_the_project_keys_names_the_first_missing_one():
    from yacs.config import CfgNode as CN

    from clipprompt.validation import check_rules

    with pytest.raises(ConfigError) as info:
        check_rules(CN({"OPTIM": CN({"NAME": "sgd"})}))
    assert str(info.value) == "The config has no key OPTIM.LR; was it built with add_project_config?"

@requires_dassl
@pytest.mark.parametrize("trainer, overrides, message", [
    ("CoCoOp", ["TRAINER.COCOOP.TEXT_CHUNK", "-1"], "TRAINER.COCOOP.TEXT_CHUNK is -1; it must be >= 0"),
    ("MPL", ["TRAINER.MPL.TEXT_CHUNK", "-8"], "TRAINER.MPL.TEXT_CHUNK is -8; it must be >= 0"),
    ("SEP", ["TRAINER.SEP.N_CTX_V", "0"], "TRAINER.SEP.N_CTX_V is 0; it must be >= 1"),
    ("MPL", ["TRAINER.MPL.CTX_INIT", LONG_INIT], "TRAINER.MPL.CTX_INIT is 80 tokens long"),
    ("HiCroPL", ["TRAINER.HICROPL.CROSS_LAYER", "12"], "TRAINER.HICROPL.CROSS_LAYER is 12 with PROMPT_DEPTH 12; it must be smaller"),
])
def test_other_trainers_nodes_are_checked(data_root, tiny_clip_path, tmp_path, trainer, overrides, message):
    config = {"CoCoOp": "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1", "MPL": "MPL/vit_b16_c4_ep10_batch1_ctxv1",
              "SEP": "SEP/vit_b16_ep50_batch32", "HiCroPL": "HiCroPL/vit_b16_c2_ep50_batch32_16ctx"}[trainer]
    argv = arguments(data_root, tiny_clip_path, tmp_path / "out", *overrides, trainer=trainer, config=config)
    assert message in input_error(*argv)


@requires_dassl
@pytest.mark.parametrize("config", sorted(p.relative_to(REPO / "configs/trainers").with_suffix("").as_posix()
                                          for p in (REPO / "configs/trainers").rglob("*.yaml")))
def test_every_shipped_config_validates(data_root, tiny_clip_path, tmp_path, config):
    """No false alarms: each shipped trainer config (on every dataset config's keys) passes as it is."""
    teacher = ["TRAINER.PROMPTKD.TEACHER_BACKBONE", tiny_clip_path] if config.startswith("PromptKD/") else []  # offline
    cfg = setup_cfg(*arguments(data_root, tiny_clip_path, tmp_path / "out", *teacher, trainer=config.split("/")[0],
                               config=config))
    assert cfg.OPTIM.MAX_EPOCH >= 1 and not (tmp_path / "out").exists()


@requires_dassl
def test_names_come_from_dassl_and_our_registries():
    from clipprompt import validation
    from clipprompt.optim import SCHEDULES
    from dassl.data.transforms.transforms import AVAI_CHOICES
    from dassl.optim.optimizer import AVAI_OPTIMS

    assert list(validation.optimizer_names()) == list(AVAI_OPTIMS)
    assert list(validation.transform_names()) == list(AVAI_CHOICES)
    assert list(validation.schedule_names()) == list(SCHEDULES)
    assert "RandomSampler" in validation.sampler_names() and "SequentialSampler" in validation.sampler_names()


@requires_dassl
def test_docs_table_is_the_generated_one():
    import trainers  # noqa: F401  (Dassl's registries)
    from clipprompt.validation import RULES, rules_table

    table = rules_table()
    assert all(f"| `{rule.key}` |" in table for rule in RULES)
    assert table in (REPO / "docs/errors.md").read_text(), "regenerate with: python -m clipprompt.validation"


# ---- config files ---------------------------------------------------------------------------------


@requires_dassl
@pytest.mark.parametrize("content, message", [
    ("OPTIM:\n  LR: [0.1\n", "is not valid YAML at line 3, column 1: expected ',' or ']'"),
    ("OPTIM:\n\tLR: 0.1\n", "is not valid YAML at line 2, column 1: found character '\\t'"),
    ("- OPTIM\n- LR\n", "holds a list, not a mapping of config keys"),
    ("just words\n", "holds a string, not a mapping of config keys"),
    ("OPTIM: 3\n", "OPTIM is a section of keys, not a value (in "),
    ("OPTIM:\n  LR:\n    VALUE: 1\n", "OPTIM.LR is a single value, not a section of keys"),
    ("OPTIM:\n  MAX_EPOCHS: 3\n", "Did you mean OPTIM.MAX_EPOCH?"),
    ("OPTIM:\n  LR: fast\n", "Type mismatch for OPTIM.LR (in "),
    (None, "is a folder; give a YAML file inside it"),
    ("missing", "does not exist"),
])
def test_bad_config_files(tmp_path, content, message):
    from trainers._dassl import get_cfg_default
    from clipprompt.config import add_project_config

    path = tmp_path / "bad.yaml"
    if content is None:
        path.mkdir()
    elif content != "missing":
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        merge_from_file(add_project_config(get_cfg_default()), str(path))
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_config_file_that_is_not_there_lists_those_that_are_closest_first():
    from clipprompt.config import read_config_file

    def message(path):
        with pytest.raises(ConfigError) as info:
            read_config_file(str(path))
        return str(info.value)

    sep = REPO / "configs/trainers/SEP"
    assert message(sep) == (f"Config file {sep} is a folder; did you mean {sep}/vit_b16_ep10_batch128.yaml? The configs "
                            f"in {sep}/: {configs_in('configs/trainers/SEP')}.")
    assert message(REPO / "configs/trainers/sep/vit_b16_ep50_batch32.yaml").startswith(
        f"Config file {REPO}/configs/trainers/sep/vit_b16_ep50_batch32.yaml does not exist; did you mean "
        f"{sep}/vit_b16_ep50_batch32.yaml? The configs in {sep}/: vit_b16_ep50_batch32.yaml, ")
    assert message(REPO / "configs/datasets/caltech.yaml").startswith(
        f"Config file {REPO}/configs/datasets/caltech.yaml does not exist; did you mean {REPO}/configs/datasets/caltech101.yaml?")
    assert message(REPO / "nowhere/x.yaml") == f"Config file {REPO}/nowhere/x.yaml does not exist."


@requires_dassl
def test_config_files_merge_as_yacs_does_and_take_integers_for_numbers(tmp_path):
    from trainers._dassl import get_cfg_default
    from clipprompt.config import add_project_config

    for path in sorted((REPO / "configs").rglob("*.yaml")):
        ours, theirs = add_project_config(get_cfg_default()), add_project_config(get_cfg_default())
        merge_from_file(ours, str(path))
        theirs.merge_from_file(str(path))
        assert ours == theirs, path
    cfg = add_project_config(get_cfg_default())
    (tmp_path / "lr.yaml").write_text("OPTIM:\n  LR: 1\n  MAX_EPOCH: 3\n")
    merge_from_file(cfg, str(tmp_path / "lr.yaml"))
    merge_from_list(cfg, ["OPTIM.WEIGHT_DECAY", "0", "INPUT.SIZE", "[32, 32]"])
    assert (cfg.OPTIM.LR, type(cfg.OPTIM.LR), cfg.OPTIM.MAX_EPOCH) == (1.0, float, 3)
    assert cfg.OPTIM.WEIGHT_DECAY == 0.0 and cfg.INPUT.SIZE == (32, 32)


@requires_dassl
def test_empty_config_file_changes_nothing(tmp_path):
    from trainers._dassl import get_cfg_default
    from clipprompt.config import add_project_config

    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    cfg = add_project_config(get_cfg_default())
    merge_from_file(cfg, str(tmp_path / "empty.yaml"))
    assert cfg == add_project_config(get_cfg_default())


# ---- files and folders the config names -----------------------------------------------------------


@requires_dassl
def test_output_dir_that_is_a_file_or_under_one(data_root, tiny_clip_path, tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    assert "is a file, not a folder" in input_error(*arguments(data_root, tiny_clip_path, afile))
    message = input_error(*arguments(data_root, tiny_clip_path, afile / "run"))
    assert f"cannot be created: {afile} is a file, not a folder" in message
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model").write_text("x")
    assert "holds a file named model" in input_error(*arguments(data_root, tiny_clip_path, tmp_path / "run"))


def test_unwritable_output_dir_or_model_folder_is_found_before_training(tmp_path, monkeypatch):
    """As root, permissions do not stop writes; the checks are driven through the write probe and statvfs."""
    from clipprompt import validation

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    model = str(run / "model")
    monkeypatch.setattr(validation, "_write_error", lambda path: f"cannot write in {path} (Permission denied)" if path == model else None)
    with pytest.raises(ConfigError, match=rf"--output-dir {run} is not writable: cannot write in {model} \(Permission denied\)"):
        validation.check_output_dir(str(run))

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.undo()
    monkeypatch.setattr(validation.tempfile, "TemporaryFile", lambda **kw: (_ for _ in ()).throw(OSError(30, "Read-only file system")))
    monkeypatch.setattr(validation.os, "statvfs", lambda path: ReadOnly())
    with pytest.raises(ConfigError, match=f"{tmp_path} is on a read-only file system"):
        validation.check_output_dir(str(tmp_path / "new" / "run"))


@requires_dassl
def test_missing_data_root_names_the_prepare_command(tiny_clip_path, tmp_path):
    root = tmp_path / "nowhere"
    message = input_error(*arguments(str(root), tiny_clip_path, tmp_path / "out"))
    assert f"python -m clipprompt.data.prepare caltech101 --root {root}" in message
    assert "does not exist" in message and not (tmp_path / "out").exists()


@requires_dassl
def test_split_file_is_checked_before_the_run(data_root, tiny_clip_path, tmp_path):
    root = tmp_path / "data"
    make_tiny_dataset(str(root), "Caltech101", num_classes=3, images_per_class=4)
    split = root / "caltech-101" / "split_zhou_Caltech101.json"
    data = json.loads(split.read_text())
    data["train"] = [entry for entry in data["train"] if entry[1] != 1]
    split.write_text(json.dumps(data))
    message = input_error(*arguments(str(root), tiny_clip_path, tmp_path / "out"))
    assert "1 class(es) have none: 'leopard' (label 1)" in message and not (tmp_path / "out").exists()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height pixels, with no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_named_model_offline_is_one_line_with_url_cache_and_local_file(tmp_path, monkeypatch):
    from clipprompt.backbones.loading import BackboneError, resolve_checkpoint

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cache = tmp_path / "cache"
    with pytest.raises(BackboneError) as info:
        resolve_checkpoint("ViT-B/32", str(cache))
    message = str(info.value)
    assert "Cannot download CLIP ViT-B/32 from https://openaipublic.azureedge.net/clip/models/" in message
    assert f"ViT-B-32.pt into {cache} (URLError: [Errno -3] Temporary failure" in message
    assert "copy it into" in message and "set MODEL.BACKBONE.NAME to the path of a local CLIP checkpoint" in message
    assert os.listdir(cache) == []  # no partial download, no staging folder


@requires_dassl
def test_named_model_offline_fails_before_the_output_folder(data_root, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    out = tmp_path / "out"
    message = input_error(*arguments(data_root, "ViT-B/16", out, "MODEL.BACKBONE.CACHE_DIR", str(tmp_path / "c")))
    assert "Cannot download CLIP ViT-B/16" in message and not out.exists()


@requires_dassl
@pytest.mark.parametrize("limit, refused_as", [(1000, "DecompressionBombError"), (3000, "DecompressionBombWarning")])
def test_images_too_large_for_pil_are_unreadable_images(tmp_path, monkeypatch, limit, refused_as):
    """PIL warns above MAX_IMAGE_PIXELS and refuses above twice that: both are unreadable images."""
    from PIL import Image

    from clipprompt.config import add_project_config
    from trainers._dassl import Datum, get_cfg_default
    from trainers.data import CheckedDatasetWrapper, UnreadableImageError

    big, small = tmp_path / "big.png", tmp_path / "small.png"
    Image.new("RGB", (64, 64)).save(big)  # 4096 pixels
    Image.new("RGB", (8, 8)).save(small)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    cfg = add_project_config(get_cfg_default())
    data = [Datum(impath=str(big), label=0, classname="a"), Datum(impath=str(small), label=1, classname="b")]
    with pytest.raises(UnreadableImageError, match=f"Cannot read image {big} \\({refused_as}: .*SKIP_BAD_IMAGES True"):
        CheckedDatasetWrapper(cfg, data)[0]
    cfg.DATALOADER.SKIP_BAD_IMAGES = True
    item = CheckedDatasetWrapper(cfg, data)[0]  # the next readable sample stands in, marked not to be counted
    assert item["label"] == 1 and item["skipped"] == str(big) and item["skip_reason"] == refused_as
    assert item["counted"] is False and CheckedDatasetWrapper(cfg, data, is_train=True)[0]["counted"] is True
    assert CheckedDatasetWrapper(cfg, data)[1] | {"img": None} == {**item, "img": None, "index": 1, "skipped": "",
                                                                 "skip_reason": "", "counted": True}


def test_sep_prototypes_of_a_class_without_images_is_a_user_error():
    import torch

    from clipprompt.models.sep import class_means

    with pytest.raises(UserError, match=r"No readable training image for class\(es\) \[2\]"):
        class_means(torch.ones(3, 2), torch.tensor([0, 0, 1]), 3)


# ---- through `python train.py`: exit status 2, one line, no traceback, no output folder --------------


def train_py(*argv, env=None):
    """`python train.py` in a fresh interpreter."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore::UserWarning", **(env or {})}
    return subprocess.run([sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=600)


def train_cli(capsys, *argv):
    """train.py's `cli` in this process, as a finished process would look: (returncode, stdout, stderr)."""
    status = train_in_process(list(argv))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["train.py", *argv], status, out, err)


def assert_one_line_input_error(run, message):
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2, run.stderr[-3000:]
    assert len(errors) == 1 and message in errors[0], run.stderr[-3000:]
    assert "Traceback" not in run.stderr


@requires_dassl
def test_train_py_in_a_fresh_process_exits_2_with_one_line(data_root, tiny_clip_path, tmp_path):
    out = tmp_path / "out"
    run = train_py(*arguments(data_root, tiny_clip_path, out, "OPTIM.MAX_EPOCH", "0"))
    assert_one_line_input_error(run, "error: OPTIM.MAX_EPOCH is 0; it must be >= 1")
    assert not out.exists()


@requires_dassl
@pytest.mark.parametrize("case, message", [
    ("zero epochs", "error: OPTIM.MAX_EPOCH is 0; it must be >= 1"),
    ("yaml syntax", "is not valid YAML at line 4, column 6: expected ',' or ']', but got ':'"),
    ("negative label", "expected labels >= 0, found label -1"),
    ("missing root", "download it with `python -m clipprompt.data.prepare caltech101 --root "),
    ("offline model", "error: Cannot download CLIP ViT-B/32 from https://openaipublic.azureedge.net/"),
])
def test_train_py_input_errors_exit_2_before_the_output_folder(data_root, tiny_clip_path, tmp_path, case, message,
                                                               capsys, monkeypatch):
    out, root, config, extra, env = tmp_path / "out", data_root, "CoOp/vit_b16_ep50", [], {}
    clip_path = tiny_clip_path
    if case == "zero epochs":
        extra = ["OPTIM.MAX_EPOCH", "0"]
    elif case == "yaml syntax":
        bad = tmp_path / "bad.yaml"
        bad.write_text("OPTIM:\n  LR: 0.1\n  NAME: [sgd\nTRAIN:\n  PRINT_FREQ: 5\n")
        config = None
    elif case == "negative label":
        root = str(tmp_path / "data")
        make_tiny_dataset(root, "Caltech101", num_classes=2, images_per_class=4)
        split = Path(root) / "caltech-101" / "split_zhou_Caltech101.json"
        data = json.loads(split.read_text())
        data["val"][0][1] = -1
        split.write_text(json.dumps(data))
    elif case == "missing root":
        root = str(tmp_path / "no-data")
    elif case == "offline model":
        clip_path = "ViT-B/32"
        env = {"CLIP_CACHE_DIR": str(tmp_path / "cache"), "https_proxy": "http://127.0.0.1:9",
               "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
    argv = arguments(root, clip_path, out, *extra)
    if config is None:
        argv[argv.index("--config-file") + 1] = str(tmp_path / "bad.yaml")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert_one_line_input_error(train_cli(capsys, *argv), message)
    assert not out.exists()


TRAINERS = "{trainers}"  # filled in by the test: every registered ClipTrainer, by name


def project_trainers() -> str:
    """This project's trainers as the messages list them: the registered ClipTrainers, by name."""
    from trainers._dassl import TRAINER_REGISTRY
    from trainers.base import ClipTrainer

    names = [n for n in TRAINER_REGISTRY.registered_names() if issubclass(TRAINER_REGISTRY.get(n), ClipTrainer)]
    assert {"CoOp", "SEP", "MPL", "ProGrad", "CoOp_DePT"} <= set(names)
    return ", ".join(sorted(names, key=str.lower))


def configs_in(folder: str) -> str:
    """The config files a message lists for `folder`, as it lists them (by name)."""
    return ", ".join(sorted(p.name for p in (REPO / folder).glob("*.yaml")))


@requires_dassl
@pytest.mark.parametrize("case, message", [
    ("root is the dataset folder", "--root {root}/caltech-101 is the Caltech101 dataset folder itself; --root should be "
     "the folder that contains caltech-101/, i.e. {root}"),
    ("config file misspelt", "Config file configs/trainers/SEP/vit_b16_ep10.yaml does not exist; did you mean "
     f"configs/trainers/SEP/vit_b16_ep10_batch128.yaml? The configs in configs/trainers/SEP/: {configs_in('configs/trainers/SEP')}."),
    ("config folder in lower case", "Config file configs/trainers/coop/ does not exist; did you mean "
     f"configs/trainers/CoOp/rn50.yaml? The configs in configs/trainers/CoOp/: {configs_in('configs/trainers/CoOp')}."),
    ("trainer in lower case", f"Unknown trainer 'coop' (--trainer); did you mean CoOp? This project's trainers: {TRAINERS}."),
    ("one of Dassl's trainers", f"--trainer DANN is one of Dassl's own trainers, which do not train CLIP prompts. "
     f"This project's trainers: {TRAINERS}."),
    ("no trainer", f"no trainer given: add --trainer NAME. This project's trainers: {TRAINERS}."),
    ("another trainer's config", "configs/trainers/SEP/vit_b16_ep50_batch32.yaml sets TRAINER.SEP, which --trainer CoOp "
     "ignores (it reads TRAINER.COOP); that file is for SEP: use --trainer SEP, or a config file of CoOp "
     "(configs/trainers/CoOp/)."),
    ("key without its section", "Unknown config key N_CTX (on the command line). Did you mean TRAINER.COOP.N_CTX?"),
    ("no dataset config", "no dataset given: add --dataset-config-file configs/datasets/NAME.yaml (NAME: imagenet, "
     "caltech101, oxford_pets, stanford_cars, oxford_flowers, food101, fgvc_aircraft, sun397, dtd, eurosat, ucf101, "
     "imagenetv2, imagenet_sketch, imagenet_a, imagenet_r)."),
    ("both prompt depths too deep", "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT is 9; this CLIP's text encoder has 3 "
     "blocks; TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION is 9; this CLIP's image encoder has 3 blocks."),
])
def test_first_mistakes_name_the_cause_and_the_fix(data_root, tiny_clip_path, tmp_path, capsys, case, message):
    """What a new user types wrong first: one line, exit 2, no traceback, no output folder."""
    out = tmp_path / "out"
    argv = arguments(data_root, tiny_clip_path, out)
    at = {flag: argv.index(flag) + 1 for flag in ("--root", "--trainer", "--config-file", "--dataset-config-file")}
    if case == "root is the dataset folder":
        argv[at["--root"]] = f"{data_root}/caltech-101"
    elif case == "config file misspelt":
        argv[at["--config-file"]] = "configs/trainers/SEP/vit_b16_ep10.yaml"
    elif case == "config folder in lower case":
        argv[at["--config-file"]] = "configs/trainers/coop/"
    elif case == "trainer in lower case":
        argv[at["--trainer"]] = "coop"
    elif case == "one of Dassl's trainers":
        argv[at["--trainer"]] = "DANN"
    elif case == "no trainer":
        del argv[at["--trainer"] - 1:at["--trainer"] + 1]
    elif case == "another trainer's config":
        argv[at["--config-file"]] = "configs/trainers/SEP/vit_b16_ep50_batch32.yaml"
    elif case == "key without its section":
        argv += ["N_CTX", "4"]
    elif case == "no dataset config":
        del argv[at["--dataset-config-file"] - 1:at["--dataset-config-file"] + 1]
    elif case == "both prompt depths too deep":  # the tiny CLIP has 3 blocks; the shipped config asks for 9 and 9
        argv[at["--trainer"]] = "PromptSRC"
        argv[at["--config-file"]] = "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml"
    run, message = train_cli(capsys, *argv), message.format(root=data_root, trainers=project_trainers())
    assert_one_line_input_error(run, message)
    assert run.stderr == f"error: {message}\n"  # the whole message, nothing else
    assert not out.exists()


@requires_dassl
def test_train_py_decompression_bomb_is_an_unreadable_image(tiny_clip_path, tmp_path, capsys):
    root = tmp_path / "data"
    make_tiny_dataset(str(root), "Caltech101", num_classes=2, images_per_class=4)
    image = root / "caltech-101" / "101_ObjectCategories" / "face" / "face_0001.jpg"
    image.write_bytes(bomb_png(20000, 20000))  # 400 MP claimed in a 60-byte file
    base = arguments(str(root), tiny_clip_path, tmp_path / "stop", "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "-1")
    assert_one_line_input_error(train_cli(capsys, *base), f"error: Cannot read image {image} (DecompressionBombError: ")

    skip = arguments(str(root), tiny_clip_path, tmp_path / "skip", "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "-1",
                     "DATALOADER.SKIP_BAD_IMAGES", "True")
    run = train_cli(capsys, *skip)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Skipped unreadable image {image} (DecompressionBombError): " in run.stdout
    assert (tmp_path / "skip" / "result.json").is_file()
