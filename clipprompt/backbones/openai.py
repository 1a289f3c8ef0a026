"""OpenAI's `clip` behind the encoder interface: ViT towers block by block, ResNet towers whole.

`clip`'s blocks are sequence-first and keep their causal mask themselves (sliced to the sequence
length), so the exact path transposes around the block's own forward; a sequence longer than that
mask (tokens inserted) runs the block's computation with a causal mask of its length. A
`ModifiedResNet` image tower has no tokens: it is a `FrozenImageEncoder`, which calls it as `CLIP.encode_image` does.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._clip import clip_model
from .encoders import FrozenImageEncoder, ImageEncoder, TextEncoder, causal_mask
from .interface import Backbone


class OpenAITextEncoder(TextEncoder):
    sequence_first = True

    def __init__(self, clip: clip_model.CLIP, fused: bool = True):
        super().__init__(clip.token_embedding, clip.positional_embedding, clip.transformer.resblocks,
                         clip.ln_final, clip.text_projection, fused)

    def run_exact(self, block: nn.Module, x: Tensor) -> Tensor:
        if x.shape[1] <= block.attn_mask.shape[-1]:
            return block(x.transpose(0, 1)).transpose(0, 1)
        # Longer than the stored mask (tokens inserted, MMRL): the block's own computation with a mask that fits.
        x = x.transpose(0, 1)
        y = block.ln_1(x)
        x = x + block.attn(y, y, y, need_weights=False, attn_mask=causal_mask(x.shape[0], x))[0]
        x = x + block.mlp(block.ln_2(x))
        return x.transpose(0, 1)


class OpenAIImageEncoder(ImageEncoder):
    sequence_first = True

    def __init__(self, visual: clip_model.VisionTransformer, fused: bool = True):
        super().__init__(visual, visual.transformer.resblocks, fused)

    @property
    def input_resolution(self) -> int:
        return self.visual.input_resolution

    def run_exact(self, block: nn.Module, x: Tensor) -> Tensor:
        return block(x.transpose(0, 1)).transpose(0, 1)

    def readout(self, tokens: Tensor) -> Tensor:
        return self.visual.ln_post(tokens[:, 0]) @ self.visual.proj


def backbone(clip: clip_model.CLIP, fused: bool = True) -> Backbone:
    visual = clip.visual
    if isinstance(visual, clip_model.VisionTransformer):
        image, kind = OpenAIImageEncoder(visual, fused), "openai-vit"
    else:
        image = FrozenImageEncoder(visual, visual.input_resolution, f"a ResNet ({type(visual).__name__})", fused)
        kind = "openai-resnet"
    return Backbone(kind, OpenAITextEncoder(clip, fused), image, clip.logit_scale, clip.text_projection.shape[1])
