"""MMA (Yang et al., CVPR 2024): multi-modal adapters on the higher blocks of both encoders.

At each adapted block i (1-based, ADAPTER_START..ADAPTER_END) a branch beside the block reads the
block's input x, normalised by the block's own ln_1, and adds to the block's output

    a_i(x) = s · up_i(shared_i(down_i(ln_1(x))))

down_i: width -> ADAPTER_DIM then ReLU, up_i: ADAPTER_DIM -> width, one pair per encoder and block;
shared_i: ADAPTER_DIM -> ADAPTER_DIM then ReLU, ONE per block, used by both encoders (the space that
couples text and image). s = ADAPTER_SCALE. Index 0 (ADAPTER_START 0) adapts the inputs instead:
the word embeddings (no norm) and the image tokens after ln_pre. The text side is frozen CLIP's
hand-crafted prompt "TEXT_CTX_INIT <class>.", so text features depend on the classes only and
evaluation computes them once; in training, the text blocks before the first adapted one see only
that frozen prompt, so their output is computed once too (`frozen_text_prefix`). The loss is
cross-entropy.

The authors' blocks wrap each branch in gradient-scale layers: the gradient entering the branch's
parameters is divided by s (as if s were 1) while the gradient reaching x stays the true one, so
the adapters train with an effective learning rate 1/s larger (1000x at s = 0.001). Their learning
rate is tuned for it; SCALE_GRADIENTS (default on) keeps it, off gives the forward's true gradient.
Index 0 has no gradient scaling in their code, nor here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..options import PRECISIONS, MethodOptions, option, register_options
from ..prompts import template_tokens
from .base import PromptedCLIP, normalize


@register_options("MMA")
@dataclass
class MMAOptions(MethodOptions):
    prec: str = option("amp", "numeric precision (fp16/amp fall back to fp32 on the CPU); amp is the authors' default",
                       choices=PRECISIONS)
    text_ctx_init: str = option("a photo of a", 'the fixed text prompt before the class name: "<TEXT_CTX_INIT> <class>."')
    adapter_start: int = option(5, "first adapted block, 1-based (0 also adapts the word embeddings and ln_pre's output)", min=0)
    adapter_end: int = option(12, "last adapted block, 1-based, inclusive", min=1)
    adapter_dim: int = option(32, "width of the adapters' bottleneck and of the shared projection", min=1)
    adapter_scale: float = option(0.001, "s: the adapters' outputs are multiplied by it")
    scale_gradients: bool = option(
        True, "divide the gradient reaching the adapters of blocks >= 1 by ADAPTER_SCALE, as the authors' "
        "gradient-scale layers do (False: the true gradient of the forward)"
    )

    def check(self) -> None:
        node = f"TRAINER.{self.node_name}"
        if self.adapter_start > self.adapter_end:
            raise ConfigError(
                f"{node}.ADAPTER_START is {self.adapter_start}, after ADAPTER_END {self.adapter_end}; "
                "the adapted blocks are ADAPTER_START..ADAPTER_END."
            )
        if self.adapter_scale == 0:
            raise ConfigError(f"{node}.ADAPTER_SCALE is 0: the adapters would do nothing (and their gradients divide by it).")


def modality_adapter(width: int, dim: int) -> nn.Sequential:
    """down (width -> dim, ReLU) and up (dim -> width): one encoder's part of an adapter."""
    return nn.Sequential(OrderedDict(down=nn.Sequential(nn.Linear(width, dim), nn.ReLU()), up=nn.Linear(dim, width)))


class GradientScale(torch.autograd.Function):
    """Identity forward; the gradient times `scale` backward (the authors' `gradient_scale_layer`)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.scale, None


class MMA(PromptedCLIP):
    """Frozen CLIP with text, visual and shared adapters beside the higher blocks of both encoders."""

    def __init__(self, clip: nn.Module, classnames: Sequence[str], options: MMAOptions | None = None):
        super().__init__(clip, classnames)
        self.options = options = options or MMAOptions()
        options.validate()
        self.require_image_tokens()
        text_depth, image_depth = self.text_encoder.depth, self.image_encoder.depth
        if options.adapter_end > min(text_depth, image_depth):
            raise ConfigError(
                f"TRAINER.{options.node_name}.ADAPTER_END is {options.adapter_end}; this CLIP's text encoder has "
                f"{text_depth} blocks and its image encoder {image_depth}, both adapted at ADAPTER_START..ADAPTER_END."
            )
        self.layers = list(range(options.adapter_start, options.adapter_end + 1))
        dim = options.adapter_dim
        # Named as the authors' modules (text_adapter.<i>.down.0.weight, shared_adapter.<i>.0.weight),
        # built and initialised in their order.
        self.text_adapter = self.build(lambda: modality_adapter(self.text_encoder.width, dim))
        self.visual_adapter = self.build(lambda: modality_adapter(self.image_encoder.width, dim))
        self.shared_adapter = self.build(lambda: nn.Sequential(nn.Linear(dim, dim), nn.ReLU()))
        self.template = f"{options.text_ctx_init} {{}}."
        # text blocks before the first adapted one (0-based count); 0 with the input adapters
        self.frozen_text_blocks = 0 if 0 in self.layers else options.adapter_start - 1
        self._text_prefix: tuple[tuple, Tensor, Tensor] | None = None  # key, tokens, their prefix

    def build(self, make) -> nn.ModuleDict:
        adapters = nn.ModuleDict({str(i): make() for i in self.layers})
        for module in adapters.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        return adapters

    def adapt(self, modality: nn.ModuleDict, index: int, x: Tensor) -> Tensor:
        """s · up(shared(down(x))) of block `index`'s adapter."""
        adapter = modality[str(index)]
        return adapter.up(self.shared_adapter[str(index)](adapter.down(x))) * self.options.adapter_scale

    def branches(self, modality: nn.ModuleDict, blocks: nn.Module) -> dict:
        """The parallel branches of blocks >= 1 (0-based keys), each reading its block's ln_1."""
        scale, rescale = self.options.adapter_scale, self.options.scale_gradients

        def branch(index: int):
            norm = blocks[index - 1].ln_1

            def run(x: Tensor) -> Tensor:
                if rescale:
                    x = GradientScale.apply(x, scale)
                y = self.adapt(modality, index, norm(x))
                return GradientScale.apply(y, 1.0 / scale) if rescale else y

            return run

        return {i - 1: branch(i) for i in self.layers if i >= 1}

    def prompt_tokens(self) -> Tensor:
        encoder = self.text_encoder
        tokens = template_tokens(self.template, self.classnames, encoder.context_length)
        if not self.eos_cut:
            tokens = F.pad(tokens, (0, encoder.context_length - tokens.shape[1]))
        return tokens.to(self.logit_scale.device)

    def frozen_text_prefix(self) -> tuple[Tensor, Tensor]:
        """The prompt tokens and the frozen text blocks' output on them, computed once per path,
        device and autocast state (the same bits as computing them at every step)."""
        device = self.logit_scale.device
        autocast = torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type)
        key = (self.eos_cut, self.text_encoder.fused, device, autocast)
        if self._text_prefix is None or self._text_prefix[0] != key:
            tokens = self.prompt_tokens()
            with torch.no_grad():
                prefix = self.text_encoder.prefix(self.text_encoder.embed(tokens), self.frozen_text_blocks)
            self._text_prefix = key, tokens, prefix
        return self._text_prefix[1], self._text_prefix[2]

    def class_text_features(self) -> Tensor:
        encoder = self.text_encoder
        parallel = self.branches(self.text_adapter, encoder.blocks)
        if 0 in self.layers:  # the input adapters: every block sees learned inputs
            tokens = self.prompt_tokens()
            embeddings = encoder.embed(tokens)
            embeddings = embeddings + self.adapt(self.text_adapter, 0, embeddings)
            return normalize(encoder(embeddings, tokens.argmax(dim=-1), parallel=parallel))
        tokens, prefix = self.frozen_text_prefix()
        return normalize(encoder(prefix, tokens.argmax(dim=-1), parallel=parallel, start_block=self.frozen_text_blocks))

    def image_features(self, images: Tensor) -> Tensor:
        injections = {0: lambda x: x + self.adapt(self.visual_adapter, 0, x)} if 0 in self.layers else None
        parallel = self.branches(self.visual_adapter, self.image_encoder.blocks)
        return normalize(self.image_encoder(images, injections=injections, parallel=parallel))

    def forward(self, images: Tensor) -> Tensor:
        return self.logits(self.image_features(images), self.text_features())
