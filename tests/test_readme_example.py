"""The README's "Adding your own trainer" example, executed from the README's own code blocks (needs Dassl)."""

import re
import sys
import types
from pathlib import Path

import pytest
import torch

from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl

REPO = Path(__file__).resolve().parent.parent


def example_blocks() -> list[str]:
    section = (REPO / "README.md").read_text().split("## Adding your own trainer")[1].split("\n## ")[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture
def my_coop(monkeypatch):
    """Run README's two blocks as the modules they name; unregister them afterwards."""
    import trainers  # noqa: F401  (Dassl, and the registries the example adds to)
    from clipprompt.options import OPTIONS
    from trainers._dassl import TRAINER_REGISTRY

    model_src, glue_src = example_blocks()
    model = types.ModuleType("clipprompt.models.my_coop")
    monkeypatch.setitem(sys.modules, model.__name__, model)
    glue = types.ModuleType("trainers.my_coop")
    glue.__package__ = "trainers"
    monkeypatch.setitem(sys.modules, glue.__name__, glue)
    try:
        exec(model_src, model.__dict__)
        exec(glue_src, glue.__dict__)
        yield glue
    finally:
        OPTIONS.pop("MYCOOP", None)
        TRAINER_REGISTRY._obj_map.pop("MyCoOp", None)


@requires_dassl
def test_readme_trainer_example_trains_with_every_model_key_applied(tmp_path, tiny_clip_path, my_coop):
    import datasets  # noqa: F401  (registers the datasets)
    import train
    from trainers._dassl import build_trainer

    make_tiny_dataset(str(tmp_path / "data"), "Caltech101", num_classes=3, images_per_class=4)
    out = tmp_path / "out"
    coop_config = (REPO / "configs/trainers/CoOp/vit_b16_ep50.yaml").read_text()
    assert "\n  COOP:\n" in coop_config
    (tmp_path / "my_coop.yaml").write_text(coop_config.replace("\n  COOP:\n", "\n  MYCOOP:\n"))  # as README says
    args = train.parse_args([
        "--root", str(tmp_path / "data"), "--trainer", "MyCoOp", "--seed", "1", "--output-dir", str(out),
        "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
        "--config-file", str(tmp_path / "my_coop.yaml"),
        "MODEL.BACKBONE.NAME", tiny_clip_path, "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "1",
        "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "2", "TRAINER.MYCOOP.N_CTX", "4",
        "TRAINER.MYCOOP.INIT_TEMPERATURE", "2.0", "MODEL.FUSED_ATTENTION", "False",
    ])
    trainer = build_trainer(train.setup_cfg(args))
    # MODEL.FUSED_ATTENTION reached the example's model although its trainer never mentions it
    assert not trainer.model.text_encoder.fused and not trainer.model.image_encoder.fused
    assert trainer.model.temperature.exp().item() == pytest.approx(2.0)
    before = trainer.model.temperature.detach().clone()
    trainer.train()
    state = torch.load(out / "model" / "model.pth.tar-1", weights_only=True)["state_dict"]
    assert set(state) == {"ctx", "temperature"} and state["ctx"].shape[0] == 4
    assert not torch.equal(state["temperature"], before)  # the temperature learned
    assert (out / "result.json").is_file()


@requires_dassl
def test_model_init_weights_is_refused_with_one_line(tmp_path):
    import trainers  # noqa: F401
    from clipprompt.config import add_project_config, merge_from_list
    from clipprompt.errors import ConfigError
    from trainers._dassl import get_cfg_default
    from trainers.coop import CoOp

    cfg = add_project_config(get_cfg_default())
    merge_from_list(cfg, ["MODEL.INIT_WEIGHTS", "weights.pth"])
    trainer = CoOp.__new__(CoOp)  # check_cfg is the first thing Dassl's __init__ runs
    with pytest.raises(ConfigError, match="MODEL.INIT_WEIGHTS is not supported"):
        trainer.check_cfg(cfg)


@requires_dassl
def test_a_trainer_without_registered_options_is_refused_with_one_line():
    import trainers  # noqa: F401
    from clipprompt.config import add_project_config
    from clipprompt.errors import ConfigError
    from trainers import ClipTrainer
    from trainers._dassl import get_cfg_default

    class Unregistered(ClipTrainer):
        pass

    trainer = Unregistered.__new__(Unregistered)  # check_cfg is the first thing Dassl's __init__ runs
    with pytest.raises(ConfigError) as info:
        trainer.check_cfg(add_project_config(get_cfg_default()))
    assert str(info.value) == "No options for TRAINER.UNREGISTERED: declare them with @register_options('UNREGISTERED')."
