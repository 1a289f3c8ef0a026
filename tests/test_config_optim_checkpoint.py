import os

import pytest
import torch
from yacs.config import CfgNode as CN

from clipprompt.runs.checkpoint import find_checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint, saved_epochs
from dataclasses import dataclass

from clipprompt.config import add_project_config, merge_from_file, merge_from_list
from clipprompt.options import OPTIONS, MethodOptions, option, register_options
from clipprompt.errors import CheckpointError, ConfigError, UserError
from clipprompt.optim import build_lr_scheduler


def dassl_like_cfg() -> CN:
    """The parts of Dassl's default config that add_project_config extends."""
    cfg = CN()
    cfg.DATASET = CN({"NAME": "", "ROOT": "", "NUM_SHOTS": -1})
    cfg.MODEL = CN({"BACKBONE": CN({"NAME": "", "PRETRAINED": True})})
    cfg.TRAINER = CN({"NAME": ""})
    cfg.OPTIM = CN({"MAX_EPOCH": 10, "LR": 0.002})
    cfg.DATALOADER = CN({"NUM_WORKERS": 4})
    return add_project_config(cfg)


def test_one_node_per_trainer():
    cfg = dassl_like_cfg()
    assert {"ZEROSHOTCLIP", "COOP", "COCOOP", "SEP", "MPL"} <= set(cfg.TRAINER)
    assert cfg.TRAINER.COOP.N_CTX == 16 and cfg.DATASET.SUBSAMPLE_CLASSES == "all"


def test_user_trainers_get_their_node_from_their_options():
    @register_options("MYTRAINER")
    @dataclass
    class MyOptions(MethodOptions):
        alpha: float = option(0.5, "a weight", min=0)

    try:
        node = dassl_like_cfg().TRAINER.MYTRAINER
        assert node.ALPHA == 0.5 and node.PREC == "fp16"
    finally:
        del OPTIONS["MYTRAINER"]


def test_misspelt_key_suggests_the_closest():
    cfg = dassl_like_cfg()
    with pytest.raises(ConfigError, match=r"Unknown config key TRAINER.COOP.N_CTXX \(on the command line\). Did you mean TRAINER.COOP.N_CTX\?"):
        merge_from_list(cfg, ["TRAINER.COOP.N_CTXX", "4"])
    merge_from_list(cfg, ["TRAINER.COOP.N_CTX", "4", "OPTIM.LR", "0.1"])
    assert cfg.TRAINER.COOP.N_CTX == 4 and cfg.OPTIM.LR == 0.1


def test_config_file_errors(tmp_path):
    cfg = dassl_like_cfg()
    bad = tmp_path / "bad.yaml"
    bad.write_text("OPTIM:\n  MAX_EPOCHS: 3\n")
    with pytest.raises(ConfigError, match=f"OPTIM.MAX_EPOCHS \\(in {bad}\\). Did you mean OPTIM.MAX_EPOCH"):
        merge_from_file(cfg, str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        merge_from_file(cfg, str(tmp_path / "missing.yaml"))


def test_override_errors():
    cfg = dassl_like_cfg()
    with pytest.raises(ConfigError, match="odd number"):
        merge_from_list(cfg, ["OPTIM.LR"])
    with pytest.raises(ConfigError, match="Type mismatch"):
        merge_from_list(cfg, ["OPTIM.MAX_EPOCH", "'ten'"])
    assert issubclass(ConfigError, UserError)  # train.py: one line, status 2


def test_sep_layers_accept_a_list():
    cfg = dassl_like_cfg()
    assert cfg.TRAINER.SEP.LAYERS is None
    merge_from_list(cfg, ["TRAINER.SEP.LAYERS", "[3, 6, 9]"])
    assert list(cfg.TRAINER.SEP.LAYERS) == [3, 6, 9]


def lrs(scheduler, epochs):
    out = []
    for _ in range(epochs):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def optimizer(lr=0.002):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_constant_warmup_then_cosine_like_dassl():
    """Epoch 0 at the warm-up LR, epoch 1 at the base LR, then cosine counted from there."""
    got = lrs(build_lr_scheduler(optimizer(), "cosine", max_epoch=5, warmup_epoch=1, warmup_cons_lr=1e-5), 5)
    import math

    expected = [1e-5] + [0.002 * 0.5 * (1 + math.cos(math.pi * e / 5)) for e in range(4)]
    assert got == pytest.approx(expected)


def test_linear_warmup_and_steps():
    got = lrs(build_lr_scheduler(optimizer(0.1), "single_step", max_epoch=6, stepsize=2, gamma=0.5,
                                 warmup_epoch=2, warmup_type="linear", warmup_min_lr=0.01), 6)
    assert got == pytest.approx([0.01, 0.05, 0.1, 0.1, 0.05, 0.05])
    got = lrs(build_lr_scheduler(optimizer(0.1), "multi_step", max_epoch=4, stepsize=[1, 3], gamma=0.1), 4)
    assert got == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_scheduler_state_is_plain_and_resumes(tmp_path):
    sched = build_lr_scheduler(optimizer(), "cosine", max_epoch=5, warmup_epoch=1)
    lrs(sched, 3)
    path = tmp_path / "s.pt"
    torch.save({"sched": sched.state_dict(), "optim": sched.optimizer.state_dict()}, path)
    state = torch.load(path, weights_only=True)
    resumed = build_lr_scheduler(optimizer(), "cosine", max_epoch=5, warmup_epoch=1)
    resumed.optimizer.load_state_dict(state["optim"])
    resumed.load_state_dict(state["sched"])
    assert lrs(resumed, 2) == pytest.approx(lrs(sched, 2))


def test_unknown_schedule():
    with pytest.raises(ValueError, match="cosine, single_step, multi_step"):
        build_lr_scheduler(optimizer(), "poly")


def test_checkpoints_are_atomic_and_found(tmp_path):
    folder = tmp_path / "model"
    for epoch in (1, 2):
        save_checkpoint(folder, {"state_dict": {"ctx": torch.full((2,), float(epoch))}, "epoch": epoch}, epoch)
    assert saved_epochs(folder) == [1, 2]
    assert latest_checkpoint(folder).endswith("model.pth.tar-2")
    assert sorted(os.listdir(folder)) == ["checkpoint", "model.pth.tar-1", "model.pth.tar-2"]  # no temp files left
    assert load_checkpoint(find_checkpoint(folder, 1))["state_dict"]["ctx"][0] == 1.0


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    folder = tmp_path / "model"
    save_checkpoint(folder, {"state_dict": {}, "epoch": 1}, 1)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed while saving")

    with pytest.raises(RuntimeError, match="killed while saving"):
        save_checkpoint(folder, {"state_dict": {}, "epoch": 2, "x": Unpicklable()}, 2)
    assert latest_checkpoint(folder).endswith("model.pth.tar-1")
    assert sorted(os.listdir(folder)) == ["checkpoint", "model.pth.tar-1"]


def test_missing_epoch_lists_what_exists(tmp_path):
    folder = tmp_path / "model"
    save_checkpoint(folder, {"state_dict": {}, "epoch": 2}, 2)
    with pytest.raises(CheckpointError, match=r"No checkpoint of epoch 5 .*saved epochs: 2"):
        find_checkpoint(folder, 5)
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "nowhere")


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": {"ctx": torch.zeros(1000)}, "epoch": 1}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(path)
