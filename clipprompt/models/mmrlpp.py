"""MMRL++ (Guo & Gu, the follow-up to MMRL in the same repository): MMRL with fewer free parameters
and tokens that carry over from layer to layer.

Three changes to MMRL (`mmrl.py`), everything else (the representation space R, where the tokens
enter, the two heads, the four-term loss, the evaluation head) is MMRL's:

- **Shared residual maps.** R's map into an encoder at representation layer k is one weight W,
  shared by all layers and learned, plus a low-rank residual A_k B_k of rank RES_LORA_DIM and its
  own bias b_k: F_k(R) = R (W + A_k B_k)ᵀ + b_k. A_k starts as `nn.Linear`'s Kaiming init, B_k at
  zero, so every layer starts from the same map, as in MMRL.
- **Token residual.** Before each representation layer after the first, the tokens entering it are
  β F_k(R) + (1 − β) (the previous block's outputs at those positions), β = BETA; MMRL replaces
  them (β = 1).
- **Low-rank representation projection.** P_r = CLIP's frozen image projection + A B, A (width ×
  PROJ_LORA_DIM, Kaiming) and B (PROJ_LORA_DIM × embed_dim, zero) learned, instead of MMRL's free
  width × embed_dim matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..options import option, register_options
from .mmrl import MMRL, MMRLOptions, representation_injections


@register_options("MMRLpp")
@dataclass
class MMRLppOptions(MMRLOptions):
    beta: float = option(0.9, "β: weight of the new tokens at each representation layer after the first (1 − β: "
                              "the previous block's tokens kept)", min=0, max=1)
    res_lora_dim: int = option(4, "rank of each layer's residual on the shared map from R", min=1)
    proj_lora_dim: int = option(64, "rank of the learned residual on CLIP's image projection (P_r)", min=1)


def kaiming_like_linear(rows: int, columns: int) -> nn.Parameter:
    """A (rows, columns) matrix initialised as `nn.Linear` initialises its weight (the authors' LoRA A)."""
    weight = torch.empty(rows, columns)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return nn.Parameter(weight)


class SharedResidualMaps(nn.Module):
    """One linear map per representation layer: a shared learned weight W plus A_k B_k of low rank,
    and a bias of its own, all starting from `initial`."""

    def __init__(self, initial: nn.Linear, layers: int, rank: int):
        super().__init__()
        out_features, in_features = initial.weight.shape
        self.weight = nn.Parameter(initial.weight.detach().clone())
        self.a = nn.ParameterList(kaiming_like_linear(out_features, rank) for _ in range(layers))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(rank, in_features)) for _ in range(layers))
        self.bias = nn.ParameterList(nn.Parameter(initial.bias.detach().clone()) for _ in range(layers))

    def __len__(self) -> int:
        return len(self.bias)

    def forward(self, x: Tensor, k: int) -> Tensor:
        return F.linear(x, self.weight + self.a[k] @ self.b[k], self.bias[k])


class MMRLpp(MMRL):
    """MMRL with shared residual maps, a token residual across layers and a low-rank P_r."""

    options: MMRLppOptions

    def __init__(self, clip: nn.Module, classnames: Sequence[str], options: MMRLppOptions | None = None, **kwargs):
        super().__init__(clip, classnames, options or MMRLppOptions(), **kwargs)

    def layer_maps(self, initial: nn.Linear) -> nn.Module:
        return SharedResidualMaps(initial, len(self.blocks), self.options.res_lora_dim)

    def map_tokens(self, maps: nn.Module, k: int) -> Tensor:
        return maps(self.rep_tokens, k)

    def build_rep_projection(self) -> None:
        if getattr(self.image_encoder.visual, "proj", None) is None:
            raise ConfigError("MMRLpp needs an image tower with a projection (its P_r is a residual on it).")
        width, rank = self.image_encoder.width, self.options.proj_lora_dim
        self.proj_lora_a = kaiming_like_linear(width, rank)
        self.proj_lora_b = nn.Parameter(torch.zeros(rank, self.embed_dim))

    def rep_projection(self) -> Tensor:
        return self.image_encoder.visual.proj + self.proj_lora_a @ self.proj_lora_b

    def injections(self, tokens: Sequence[Tensor]) -> dict[int, Callable]:
        return representation_injections(tokens, self.blocks, self.options.beta)
