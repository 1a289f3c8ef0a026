"""The README's "Adding your own trainer" example, run from the README's own code blocks (needs Dassl)."""

import re
import subprocess
import sys
from pathlib import Path

import torch

from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl

REPO = Path(__file__).resolve().parent.parent

RUNNER = '''
import re, sys, types
section = open("README.md").read().split("## Adding your own trainer")[1].split("\\n## ")[0]
model_src, glue_src = re.findall(r"```python\\n(.*?)```", section, re.S)
module = types.ModuleType("clipprompt.models.my_coop")
exec(model_src, module.__dict__)
sys.modules["clipprompt.models.my_coop"] = module
import trainers
glue = types.ModuleType("trainers.my_coop")
glue.__package__ = "trainers"
exec(glue_src, glue.__dict__)
import train
sys.exit(train.main(sys.argv[1:]))
'''


@requires_dassl
def test_readme_trainer_example_trains(tmp_path, tiny_clip_path):
    make_tiny_dataset(str(tmp_path / "data"), "Caltech101")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, "--root", str(tmp_path / "data"), "--trainer", "MyCoOp",
         "--dataset-config-file", "configs/datasets/caltech101.yaml",
         "--config-file", "configs/trainers/CoOp/vit_b16_ep50.yaml", "--output-dir", str(out),
         "MODEL.BACKBONE.NAME", tiny_clip_path, "INPUT.SIZE", "(32, 32)", "OPTIM.MAX_EPOCH", "1",
         "DATALOADER.NUM_WORKERS", "0", "TRAINER.MYCOOP.N_CTX", "4"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    state = torch.load(out / "model" / "model.pth.tar-1", weights_only=True)["state_dict"]
    assert set(state) == {"ctx", "temperature"} and state["ctx"].shape[0] == 4
    assert (out / "result.json").is_file()


def test_readme_has_the_example_blocks():
    section = (REPO / "README.md").read_text().split("## Adding your own trainer")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2 and "@TRAINER_REGISTRY.register()" in blocks[1]
