"""Shared by the fidelity comparisons: import the authors' code, a random CLIP, relative differences.

The authors' repositories ship their own fork of `clip` (with `design_details` for prompt depth)
and import it as `clip`, which is also the name of the package we use. `import_authors_file`
imports one of their files with their checkout's `clip` in place and puts ours back afterwards;
the imported module keeps its references to their fork. Nothing of their code is stored here:
the scripts take the path of a checkout.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clipprompt._clip import clip_model  # noqa: E402  (our clip, imported before theirs)

# Their code hard-codes a 512-wide text encoder and a 768-wide image encoder; depth and input
# size are ours to shrink so the comparison runs on a CPU in seconds.
SMALL_SHAPE = dict(
    embed_dim=64, image_resolution=32, vision_layers=4, vision_width=768, vision_patch_size=16,
    context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=4,
)


def import_authors_file(checkout: str, relative_path: str, module_name: str):
    """Import `<checkout>/<relative_path>` as `module_name`, with the checkout's own `clip` package.

    The file is imported inside a package `<module_name>_pkg` over its folder, so its relative
    imports (`from .imagenet_templates import ...`) work without running that folder's __init__.
    """
    ours = {name: mod for name, mod in sys.modules.items() if name == "clip" or name.startswith("clip.")}
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, checkout)
    path = Path(checkout) / relative_path
    package = types.ModuleType(f"{module_name}_pkg")
    package.__path__ = [str(path.parent)]
    sys.modules[package.__name__] = package
    try:
        spec = importlib.util.spec_from_file_location(f"{package.__name__}.{path.stem}", str(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        module.authors_clip = sys.modules["clip"]
    finally:
        sys.path.remove(checkout)
        for name in [n for n in sys.modules if n == "clip" or n.startswith("clip.")]:
            del sys.modules[name]
        sys.modules.update(ours)
    return module


def random_clip_state(seed: int = 0) -> dict:
    """A random fp32 CLIP state dict of SMALL_SHAPE, built with the `clip` package's model class."""
    torch.manual_seed(seed)
    return clip_model.CLIP(**SMALL_SHAPE).state_dict()


def our_clip(state: dict) -> clip_model.CLIP:
    model = clip_model.CLIP(**SMALL_SHAPE)
    model.load_state_dict(state)
    return model.eval()


def their_clip(authors_clip_package, state: dict, design_details: dict):
    """Their fork's CLIP with the same fp32 weights (their build_model rounds to fp16; reload in fp32)."""
    model = authors_clip_package.model.build_model(dict(state), design_details).float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    return model.eval()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative difference ||a - b|| / ||b|| (0 when both are 0)."""
    a, b = a.detach().double(), b.detach().double()
    denominator = b.norm().item()
    return (a - b).norm().item() / denominator if denominator else (a - b).norm().item()


def report(title: str, rows: list[tuple[str, float]]) -> float:
    print(f"\n{title}")
    for name, value in rows:
        print(f"  {name:<48} {value:.2e}")
    worst = max(value for _, value in rows)
    print(f"  {'max':<48} {worst:.2e}")
    return worst
