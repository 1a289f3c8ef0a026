"""What a method gets from a CLIP of any library: its two encoders, its logit scale, its kind.

`as_backbone(model)` turns a loaded model (`clip`'s CLIP, `open_clip`'s CLIP) into a `Backbone`
through the module of its library (`openai.py`, `openclip.py`); methods only see this. The kind
("openai-vit", "openai-resnet", "openclip-vit", ...) names the library and the image tower; the
feature cache keys on it and errors name it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .encoders import FrozenImageEncoder, ImageEncoder, TextEncoder


@dataclass
class Backbone:
    kind: str
    text: TextEncoder
    image: ImageEncoder | FrozenImageEncoder
    logit_scale: Tensor  # log of the temperature, as the libraries store it
    embed_dim: int

    @property
    def input_resolution(self) -> int:
        return self.image.input_resolution


def as_backbone(model: nn.Module | Backbone, fused: bool = True) -> Backbone:
    """The `Backbone` of a model built by `clip` or `open_clip`."""
    if isinstance(model, Backbone):
        return model
    from . import openai

    if isinstance(model, openai.clip_model.CLIP):
        return openai.backbone(model, fused)
    from . import openclip

    if openclip.is_openclip_model(model):
        return openclip.backbone(model, fused)
    raise TypeError(f"Not a CLIP model of clip or open_clip: {type(model).__module__}.{type(model).__name__}")


def input_resolution(model: nn.Module | Backbone) -> int:
    """The image size a loaded CLIP takes (INPUT.SIZE must match it)."""
    return as_backbone(model).input_resolution
