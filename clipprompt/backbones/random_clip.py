"""Randomly initialised CLIPs of real or tiny shapes, built with `clip`'s or `open_clip`'s own model classes.

No weights can be downloaded in tests or benchmarks, so they build a CLIP here, save it as a
state dict and load it back through `backbones.loading.load_clip`, the path users' checkpoints take.
`tiny` has the structure of a ViT CLIP (same blocks, heads of width 64) at a size the CPU runs
in milliseconds; `tiny-deeper` is the same with other depths (5 vision, 4 text blocks); `tiny-rn`
is an RN50-shaped ResNet CLIP (`ModifiedResNet` with RN50's 3, 4, 6, 3 bottlenecks, width 8); the other presets have the shapes
of the published models. `save_random_openclip` does the same with open_clip's `create_model`.

    python -m clipprompt.backbones.random_clip tiny_clip.pt                   # MODEL.BACKBONE.NAME tiny_clip.pt
    python -m clipprompt.backbones.random_clip tiny_rn.pt --preset tiny-rn    # a tiny ResNet CLIP
    python -m clipprompt.backbones.random_clip tiny_oc --openclip             # openclip:tiny_oc/tiny-openclip.json:tiny_oc/weights.pt
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass

import torch

from ._clip import clip_model


@dataclass(frozen=True)
class ClipShape:
    embed_dim: int
    image_resolution: int
    vision_layers: int | tuple[int, int, int, int]  # a ViT's blocks, or a ResNet's bottlenecks per stage
    vision_width: int
    vision_patch_size: int | None  # None for a ResNet
    context_length: int
    vocab_size: int
    transformer_width: int
    transformer_heads: int
    transformer_layers: int


PRESETS: dict[str, ClipShape] = {
    # heads = width // 64, as clip.build_model infers them when the file is loaded back
    "tiny": ClipShape(32, 32, 3, 128, 8, 77, 49408, 128, 2, 3),
    "tiny-deeper": ClipShape(32, 32, 5, 128, 8, 77, 49408, 128, 2, 4),
    # ResNet heads = width * 32 // 64 (clip's rule); attention pooling over (32 // 32)² + 1 tokens
    "tiny-rn": ClipShape(32, 32, (3, 4, 6, 3), 8, None, 77, 49408, 128, 2, 3),
    "RN50": ClipShape(1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12),
    "RN101": ClipShape(512, 224, (3, 4, 23, 3), 64, None, 77, 49408, 512, 8, 12),
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


# open_clip's model-config format; heads = width // 64 as open_clip's default head width
TINY_OPENCLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 128, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 3},
}


def save_random_openclip(folder: str, name: str = "tiny-openclip", seed: int = 0, **changes) -> str:
    """Write open_clip model config `<folder>/<name>.json` (TINY_OPENCLIP updated with `changes`:
    e.g. `vision_cfg={..., "ls_init_value": 0.1}`) and the state dict of a random model built by
    `open_clip.create_model(name, pretrained=None)` to `<folder>/weights.pt`; returns the
    `openclip:<config>:<weights>` backbone name that loads them back."""
    import open_clip

    os.makedirs(folder, exist_ok=True)
    config = {**TINY_OPENCLIP, **changes}
    config_path = os.path.join(folder, f"{name}.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=1)
    open_clip.add_model_config(config_path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(name, pretrained=None)
        for block in [*model.transformer.resblocks, *getattr(getattr(model.visual, "transformer", None), "resblocks", [])]:
            for scale in (getattr(block, "ls_1", None), getattr(block, "ls_2", None)):  # layer scales that matter
                if hasattr(scale, "gamma"):
                    scale.gamma.data.uniform_(0.5, 1.5)
    weights = os.path.join(folder, "weights.pt")
    torch.save(model.state_dict(), weights)
    return f"openclip:{config_path}:{weights}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="output checkpoint file (a folder with --openclip)")
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--openclip", action="store_true", help="a tiny open_clip ViT (config and weights) instead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.openclip:
        print(f"Saved a random tiny open_clip CLIP: MODEL.BACKBONE.NAME {save_random_openclip(args.path, seed=args.seed)}")
        return
    print(f"Saved a random {args.preset} CLIP to {save_random_clip(args.path, args.preset, args.seed)}")


if __name__ == "__main__":
    main()
