"""What every method shares: frozen CLIP encoders, the logit scale, logits, text-feature caching.

A method subclasses `PromptedCLIP`. Methods whose text features depend only on the classes
implement `class_text_features()` and inherit `forward` (CoOp, ZeroshotCLIP); the trainer wraps
evaluation in `with model.cached_text_features():` so they are computed once per test set, not
per batch. Image-conditioned methods override `forward` or `logits_from_image_features` (CoCoOp,
through `encode_text(image_features)`, which an add-on such as DePT reads too). Every method
turns features into logits with `logits()` (`cosine_logits`: fp32, whatever the autocast dtype);
a loss other than cross-entropy overrides `loss`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.encoders import FrozenImageEncoder, ImageEncoder, TextEncoder
from ..backbones.interface import Backbone, as_backbone
from ..errors import ConfigError
from ..prompts import ClassPrompts, template_tokens

DEFAULT_TEMPLATE = "a photo of a {}."  # hand-crafted prompt when a dataset has none of its own
# The methods whose image side is the frozen, unprompted encoder: they run on any image tower
# (ResNet CLIPs too); the others prompt the image tokens of a ViT (`require_image_tokens`).
FROZEN_IMAGE_METHODS = ("ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "ProGrad", "TCP")


class PromptedCLIP(nn.Module):
    """A frozen CLIP plus whatever a method learns; only the learned part is trainable.

    `clip` is a model of `clip` or `open_clip` (or its `Backbone`); the method sees its encoders only.
    """

    def __init__(self, clip: nn.Module | Backbone, classnames: Sequence[str]):
        super().__init__()
        if not classnames:
            raise ValueError("The class list is empty: nothing to classify")
        self.classnames = list(classnames)
        backbone = as_backbone(clip)
        self.backbone_kind = backbone.kind
        self.embed_dim = backbone.embed_dim
        self.text_encoder = backbone.text.requires_grad_(False)
        self.image_encoder = backbone.image.requires_grad_(False)
        self.register_buffer("logit_scale", backbone.logit_scale.detach().exp().float().reshape(()), persistent=False)
        self._text_cache: Tensor | None = None
        self._frozen_prompts: tuple[tuple, Tensor] | None = None  # (template, paths, device), features
        self.eos_cut = True

    def configure(self, *, eos_cut: bool | None = None, fused: bool | None = None) -> "PromptedCLIP":
        """Turn the exact fast paths on or off, to compare them with the slow paths.

        eos_cut: text prompts end after the longest EOS (False: CLIP's full 77 tokens).
        fused: attention through scaled_dot_product_attention (False: CLIP's block forward).
        """
        for module in self.modules():
            if eos_cut is not None and isinstance(module, ClassPrompts):
                module.cut = eos_cut
            if fused is not None and isinstance(module, (TextEncoder, ImageEncoder, FrozenImageEncoder)):
                module.fused = fused
        if eos_cut is not None:
            self.eos_cut = eos_cut
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def require_image_tokens(self) -> None:
        """Refuse, in one line, an image tower without tokens to prompt (a ResNet CLIP)."""
        if not self.image_encoder.has_tokens:
            raise ConfigError(
                f"{type(self).__name__} prompts the image encoder's tokens, but this CLIP's image encoder is "
                f"{self.image_encoder.description} ({self.backbone_kind}); use a ViT backbone, or a method whose "
                f"image side is frozen: {', '.join(FROZEN_IMAGE_METHODS)}."
            )

    def class_text_features(self) -> Tensor | None:
        """Normalized text features (n_cls, embed_dim) if they depend on the classes only."""
        return None

    def encode_class_text(self) -> Tensor | None:
        """Raw (unnormalized) class text features (n_cls, E); None where the prompts depend on the
        image (CoCoOp) or a method does not expose them. What an add-on (DePT) caches at evaluation."""
        return None

    def encode_text(self, image_features: Tensor) -> Tensor:
        """Raw text features that the logits of these raw image features (B, E) use: the class
        features (n_cls, E), shared by the batch; image-conditioned methods (CoCoOp) override it
        with (B, n_cls, E), one set per image. What an add-on (DePT) reads beside the logits."""
        text = self.encode_class_text()
        if text is None:
            raise NotImplementedError(f"{type(self).__name__} exposes no raw text features")
        return text

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

    @torch.no_grad()
    def frozen_prompt_features(self, template: str) -> Tensor:
        """Frozen CLIP's normalized fp32 features of `template` for each class (VPT's text side,
        ProGrad's zero-shot teacher), computed once and again only when the template, the paths
        (`configure`) or the device change. On the exact path they are `CLIP.encode_text`'s bits."""
        device = self.logit_scale.device
        key = (template, self.eos_cut, self.text_encoder.fused, device)
        if self._frozen_prompts is None or self._frozen_prompts[0] != key:
            with torch.autocast(device.type, enabled=False):
                features = hand_crafted_features(self.text_encoder, self.classnames, template, not self.eos_cut)
            self._frozen_prompts = key, features
        return self._frozen_prompts[1]

    def logits(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        """Scaled cosine similarities in fp32 of normalized features (see `cosine_logits`)."""
        return cosine_logits(image_features, text_features, self.logit_scale)

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, n_cls) of the frozen image encoder's features; prompted encoders override."""
        return self.logits_from_image_features(self.image_encoder(images))

    def encode_images(self, images: Tensor) -> Tensor:
        """Raw (unnormalized) image features (B, E) as this method's forward computes them; methods
        that prompt the image encoder override it (an add-on such as DePT reads them)."""
        return self.image_encoder(images)

    def logits_from_image_features(self, features: Tensor) -> Tensor:
        """Logits from the frozen image encoder's output, against the class-only text features.

        A method whose `forward` is this function of the frozen features (defined in the same class)
        gets its test-set features from `clipprompt.runs.feature_cache`; image-conditioned methods
        (CoCoOp) override it, methods that prompt the image encoder override `forward`.
        """
        text = self.text_features()
        if text is None:
            raise NotImplementedError(f"{type(self).__name__} must implement forward() or class_text_features()")
        return self.logits(normalize(features), text)

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy of the logits; returns the loss and scalars to log."""
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        return loss, {"loss": loss.item(), "acc": accuracy(logits, labels)}

    def parameter_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        """The trained parameters as (parameters, multiplier of OPTIM.LR) groups; one group by default
        (DePT gives its head its own rate)."""
        return [([p for p in self.parameters() if p.requires_grad], 1.0)]

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


def fp32_matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b in fp32 even under autocast: cosine logits scaled by ~100 lose whole units in bf16."""
    with torch.autocast(a.device.type, enabled=False):
        return a.float() @ b.float()


def cosine_logits(image_features: Tensor, text_features: Tensor, logit_scale: Tensor) -> Tensor:
    """logit_scale · image · text of normalized features, in fp32 even under autocast (bf16 ties
    flip argmax), in CLIP's order `(logit_scale * image) @ text.T` so the exact paths give the
    authors' bits.

    image_features (B, E); text_features (n_cls, E), shared by the batch, or (B, n_cls, E), one
    set per image (CoCoOp, MPL). Both must be normalized already: each method decides what its
    features are (SEP's normalized sums, MPL's fused prompts), and normalizing twice changes bits.
    Per-image text features take one product per image, as CoCoOp's code does (a batched product
    differs in the last bits; the text passes cost far more than this loop).
    Returns (B, n_cls) fp32.
    """
    with torch.autocast(image_features.device.type, enabled=False):
        image = logit_scale.float() * image_features.float()
        text = text_features.float()
        if text.dim() == 2:
            return image @ text.t()
        return torch.stack([one_image @ its_text.t() for one_image, its_text in zip(image, text)])


def hand_crafted_features(
    text_encoder: TextEncoder, classnames: Sequence[str], template: str, full_context: bool = False
) -> Tensor:
    """Normalized fp32 features (n_cls, embed_dim) of `template` with each class name for "{}",
    through the frozen encoder (KgCoOp's and TCP's anchors, SEP's hand-crafted text features).

    The prompts are cut after the longest EOS, or keep CLIP's full context with `full_context`
    (the exact path: the authors' bits)."""
    with torch.no_grad():
        length = text_encoder.context_length
        tokens = template_tokens(template, classnames, length)
        if full_context:
            tokens = F.pad(tokens, (0, length - tokens.shape[1]))
        return normalize(text_encoder.encode_tokens(tokens).float())


def accuracy(logits: Tensor, labels: Tensor) -> float:
    return (logits.argmax(dim=-1) == labels).float().mean().item() * 100.0
