"""What every fidelity comparison shares: the authors' module loaded beside ours, one CLIP, the diffs.

Each authors' repository carries its own fork of CLIP and imports Dassl; their trainer module is
loaded from a checkout given on the command line (never copied here): their folder goes first on
sys.path so `import clip` finds their fork, `load_clip_to_cpu` returns a copy of the same random
CLIP that our model gets, and `.cuda()` is a no-op so it all runs on the CPU in fp32.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from yacs.config import CfgNode as CN

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clipprompt.random_clip import build_random_clip  # noqa: E402  (binds clip-anytorch first)


@contextlib.contextmanager
def cpu_only() -> Iterator[None]:
    """`.cuda()` on modules and tensors returns them unchanged (their code moves things to the GPU)."""
    module_cuda, tensor_cuda = torch.nn.Module.cuda, torch.Tensor.cuda
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.nn.Module.cuda, torch.Tensor.cuda = module_cuda, tensor_cuda


def load_authors_module(root: Path, module_file: str, name: str, package_dir: str | None = None):
    """Import `root/module_file` as `name`, with `root` first on sys.path and their `clip` fork."""
    for key in [k for k in sys.modules if k == "clip" or k.startswith("clip.")]:
        del sys.modules[key]  # ours is already bound inside clipprompt; theirs must win here
    sys.path.insert(0, str(root))
    path = root / module_file
    if package_dir:  # a module with relative imports (TCP's `.clip_text`) needs its package
        package = name.rsplit(".", 1)[0]
        spec = importlib.util.spec_from_file_location(package, root / package_dir / "__init__.py",
                                                      submodule_search_locations=[str(root / package_dir)])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules[package] = pkg  # not executed: their __init__ imports every trainer
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def their_clip(clip_module, ours: torch.nn.Module) -> torch.nn.Module:
    """Their fork's CLIP class with our random CLIP's weights (same shapes, same state dict)."""
    state = ours.state_dict()
    model = clip_module.build_model(copy.deepcopy(state)).float()  # their build_model rounds to fp16
    model.load_state_dict(state)  # so load the exact fp32 weights again
    return model.eval()


def random_clip(preset: str, seed: int = 0) -> torch.nn.Module:
    return build_random_clip(preset, seed).float()


def dassl_like_cfg(node: Mapping, dataset: str, resolution: int) -> CN:
    """The few keys their model code reads."""
    cfg = CN(new_allowed=True)
    cfg.TRAINER = CN(new_allowed=True)
    for name, values in node.items():
        cfg.TRAINER[name] = CN(dict(values))
    cfg.INPUT = CN({"SIZE": (resolution, resolution)})
    cfg.DATASET = CN({"NAME": dataset})
    cfg.MODEL = CN({"BACKBONE": CN({"NAME": "random"})})
    return cfg


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative difference ||a - b|| / ||b||."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def report(title: str, rows: Mapping[str, float], tolerance: float = 1e-5) -> bool:
    ok = all(v <= tolerance for v in rows.values())
    print(f"{title}: {'MATCH' if ok else 'DIFFER'} (relative differences, tolerance {tolerance:g})")
    for key, value in rows.items():
        print(f"  {key:<28} {value:.2e}")
    return ok
