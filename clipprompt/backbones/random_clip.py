"""Randomly initialised CLIPs of real or tiny shapes, built with `clip`'s own model class.

No weights can be downloaded in tests or benchmarks, so they build a CLIP here, save it as a
state dict and load it back through `clip_loading.load_clip`, the path users' checkpoints take.
`tiny` has the structure of a ViT CLIP (same blocks, heads of width 64) at a size the CPU runs
in milliseconds; the other presets have the shapes of the published models.

    python -m clipprompt.backbones.random_clip tiny_clip.pt            # a file to pass as MODEL.BACKBONE.NAME
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import torch

from ._clip import clip_model


@dataclass(frozen=True)
class ClipShape:
    embed_dim: int
    image_resolution: int
    vision_layers: int
    vision_width: int
    vision_patch_size: int
    context_length: int
    vocab_size: int
    transformer_width: int
    transformer_heads: int
    transformer_layers: int


PRESETS: dict[str, ClipShape] = {
    # heads = width // 64, as clip.build_model infers them when the file is loaded back
    "tiny": ClipShape(32, 32, 3, 128, 8, 77, 49408, 128, 2, 3),
    "ViT-B/32": ClipShape(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12),
    "ViT-B/16": ClipShape(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12),
    "ViT-L/14": ClipShape(768, 224, 24, 1024, 14, 77, 49408, 768, 12, 12),
}


def build_random_clip(preset: str | ClipShape = "tiny", seed: int = 0) -> clip_model.CLIP:
    """A fp32 CLIP with the shape of `preset` (a name or a ClipShape) and seeded random weights (CLIP's own init)."""
    shape = preset if isinstance(preset, ClipShape) else PRESETS.get(preset)
    if shape is None:
        raise ValueError(f"Unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = clip_model.CLIP(**asdict(shape))
    return model.eval()


def save_random_clip(path: str, preset: str = "tiny", seed: int = 0) -> str:
    """Save a random CLIP's state dict to `path` (loadable as MODEL.BACKBONE.NAME) and return it."""
    torch.save(build_random_clip(preset, seed).state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="output checkpoint file")
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"Saved a random {args.preset} CLIP to {save_random_clip(args.path, args.preset, args.seed)}")


if __name__ == "__main__":
    main()
