"""What every method shares: frozen CLIP encoders, the logit scale, and text-feature caching.

A method subclasses `PromptedCLIP` and implements `forward(images) -> logits`; a loss other
than cross-entropy overrides `loss`. Methods whose text features depend only on the classes
implement `class_text_features()`, and the trainer wraps evaluation in
`with model.cached_text_features():` so they are computed once per test set, not per batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._clip import clip_model
from ..encoders import ImageEncoder, TextEncoder
from ..prompts import ClassPrompts


class PromptedCLIP(nn.Module):
    """A frozen CLIP plus whatever a method learns; only the learned part is trainable."""

    def __init__(self, clip: clip_model.CLIP, classnames: Sequence[str], fused: bool = True):
        super().__init__()
        if not classnames:
            raise ValueError("The class list is empty: nothing to classify")
        self.classnames = list(classnames)
        self.text_encoder = TextEncoder(clip, fused=fused).requires_grad_(False)
        self.image_encoder = ImageEncoder(clip.visual, fused=fused).requires_grad_(False)
        self.register_buffer("logit_scale", clip.logit_scale.detach().exp().float(), persistent=False)
        self._text_cache: Tensor | None = None
        self.eos_cut = True

    def configure(self, *, eos_cut: bool | None = None, fused: bool | None = None) -> "PromptedCLIP":
        """Turn the exact fast paths on or off, to compare them with the slow paths.

        eos_cut: text prompts end after the longest EOS (False: CLIP's full 77 tokens).
        fused: attention through scaled_dot_product_attention (False: CLIP's block forward).
        """
        for module in self.modules():
            if eos_cut is not None and isinstance(module, ClassPrompts):
                module.cut = eos_cut
            if fused is not None and isinstance(module, (TextEncoder, ImageEncoder)):
                module.fused = fused
        if eos_cut is not None:
            self.eos_cut = eos_cut
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def class_text_features(self) -> Tensor | None:
        """Normalized text features (n_cls, embed_dim) if they depend on the classes only."""
        return None

    def text_features(self) -> Tensor | None:
        """Class text features, from the evaluation cache when one is active."""
        if self._text_cache is not None:
            return self._text_cache
        return self.class_text_features()

    @contextlib.contextmanager
    def cached_text_features(self) -> Iterator[None]:
        """Compute class-only text features once for every forward pass inside the block."""
        with torch.no_grad():
            self._text_cache = self.class_text_features()
        try:
            yield
        finally:
            self._text_cache = None

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy of the logits; returns the loss and scalars to log."""
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        return loss, {"loss": loss.item(), "acc": accuracy(logits, labels)}

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Only what was trained: the parameters that require grad (CLIP stays out)."""
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load what `trainable_state_dict` saved; names and shapes must match exactly."""
        own = {name: p for name, p in self.named_parameters() if p.requires_grad}
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        wrong = [
            f"{name}: checkpoint {tuple(state[name].shape)} vs model {tuple(own[name].shape)}"
            for name in sorted(set(own) & set(state))
            if state[name].shape != own[name].shape
        ]
        if missing or unexpected or wrong:
            problems = []
            if missing:
                problems.append(f"missing {missing}")
            if unexpected:
                problems.append(f"unexpected {unexpected}")
            if wrong:
                problems.append("shape mismatch " + "; ".join(wrong))
            raise ValueError(
                "The checkpoint does not fit this model (another trainer, backbone or config?): "
                + ", ".join(problems)
            )
        with torch.no_grad():
            for name, p in own.items():
                p.copy_(state[name])


def normalize(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    return (logits.argmax(dim=-1) == labels).float().mean().item() * 100.0
