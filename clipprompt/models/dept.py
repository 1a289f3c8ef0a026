"""DePT (Zhang et al., CVPR 2024): a decoupled head added to a prompt-tuning method.

DePT wraps a built base model (CoOp, CoCoOp, KgCoOp, MaPLe) and keeps its prompts, its logits and
its extra loss terms. Beside them it learns a channel-wise transformation (CwT: a per-channel scale
and shift) of the raw text and image features and a linear classifier over the base classes on
the transformed features (the CAT head). With t the raw text features of the batch's labels (for
CoCoOp, each image's own prompts' features of its label) and v the raw image features:

    loss = (1 - W) * CE(base logits, y) + W * CE(head([CwT_t(t); CwT_v(v)]), [y; y]) + base terms

At evaluation on the classes the head was trained on, the logits are
`(1 - W) * base logits + W * head(CwT_v(v))`; on any other classes (new classes, another
dataset) the base logits alone. See docs/dept.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..options import Options, option, register_options
from .base import PromptedCLIP, accuracy, cosine_logits, normalize
from .cocoop import CoCoOp
from .coop import CoOp
from .kgcoop import KgCoOp
from .maple import MaPLe

HEADS = ("linear", "similarity")
BASES = (CoOp, CoCoOp, KgCoOp, MaPLe)  # exactly these classes: a subclass may compute its features otherwise


@register_options("DEPT")
@dataclass
class DePTOptions(Options):
    """The node `TRAINER.DEPT`, read beside the base method's node by the `<Base>_DePT` trainers."""

    weight: float = option(
        0.7, "W: weight of the head's cross-entropy (the base's gets 1 - W) and of the head's logits at test", min=0, max=1
    )
    head: str = option("linear", "linear: a linear classifier of the base classes; similarity: cosine logits of the transformed features", choices=HEADS)
    cwt: bool = option(True, "channel-wise transformation (scale and shift per channel) of the features the head reads")
    lr_mult: float = option(6.5, "the head's and CwT's learning rate is OPTIM.LR times this", above=0)
    test_time_fusion: bool = option(
        True, "on the trained classes, mix the base and head logits with W (False: the head's logits alone)"
    )


class ChannelwiseTransform(nn.Module):
    """x * scale + shift per channel, starting at the identity (the authors' FiLM module)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x + self.bias


class DePT(PromptedCLIP):
    """A base model plus the decoupled head; the base's own parameters keep their names under `base.`."""

    def __init__(self, base: PromptedCLIP, options: DePTOptions | None = None):
        nn.Module.__init__(self)  # the encoders, classes and logit scale are the base's
        if type(base) not in BASES:
            names = ", ".join(cls.__name__ for cls in BASES)
            raise ConfigError(f"DePT wraps {names}; {type(base).__name__} is not one of them.")
        self.options = options = options or DePTOptions()
        options.validate()
        self.base = base
        self._raw_text_cache: Tensor | None = None  # what `cached_text_features` holds (raw: the similarity head reads it)
        dim = base.embed_dim  # CLIP's joint embedding width
        self.cwt_text = ChannelwiseTransform(dim) if options.cwt else nn.Identity()
        self.cwt_image = ChannelwiseTransform(dim) if options.cwt else nn.Identity()
        self.head = nn.Linear(dim, base.num_classes) if options.head == "linear" else None
        self.head_active = True  # False once loaded for classes the head was not trained on

    # ---- what the trainer reads: the base's ------------------------------------------------

    @property
    def classnames(self) -> list[str]:
        return self.base.classnames

    @property
    def text_encoder(self):
        return self.base.text_encoder

    @property
    def image_encoder(self):
        return self.base.image_encoder

    @property
    def logit_scale(self) -> Tensor:
        return self.base.logit_scale

    @property
    def backbone_kind(self) -> str:
        return self.base.backbone_kind

    @property
    def embed_dim(self) -> int:
        return self.base.embed_dim

    @property
    def eos_cut(self) -> bool:
        return self.base.eos_cut

    def configure(self, *, eos_cut: bool | None = None, fused: bool | None = None) -> "DePT":
        self.base.configure(eos_cut=eos_cut, fused=fused)
        return self

    def image_features_are_frozen(self) -> bool:
        """Whether the base's logits come from the frozen image encoder (then so do the head's)."""
        from ..runs.feature_cache import uses_frozen_features

        return uses_frozen_features(self.base)

    # ---- features ----------------------------------------------------------------------------

    def raw_text_features(self, image_features: Tensor | None = None) -> Tensor:
        """The base's raw text features for these raw image features: the class features (n_cls, E)
        from the evaluation cache when one is active, else (B, n_cls, E) per image where the base's
        prompts depend on the image (CoCoOp; then `image_features` are needed)."""
        if self._raw_text_cache is not None:
            return self._raw_text_cache
        if image_features is None:
            return self.base.encode_class_text()
        return self.base.encode_text(image_features)

    def class_text_features(self) -> Tensor | None:
        text = self._raw_text_cache if self._raw_text_cache is not None else self.base.encode_class_text()
        return None if text is None else normalize(text)

    def text_features(self) -> Tensor | None:
        return self.class_text_features()

    def reads_text_at_evaluation(self) -> bool:
        """False where the evaluation logits are the linear head's alone (TEST_TIME_FUSION False)."""
        return not (self.head_active and self.head is not None and not self.options.test_time_fusion)

    @contextlib.contextmanager
    def cached_text_features(self) -> Iterator[None]:
        """The base's raw class text features once for the block (none where they depend on the
        image, or where the evaluation reads no text)."""
        with torch.no_grad():
            self._raw_text_cache = self.base.encode_class_text() if self.reads_text_at_evaluation() else None
        try:
            yield
        finally:
            self._raw_text_cache = None

    def encode_images(self, images: Tensor) -> Tensor:
        return self.base.encode_images(images)

    # ---- logits --------------------------------------------------------------------------------

    def head_logits(self, image_features: Tensor, text_features: Tensor | None = None, labels: Tensor | None = None) -> Tensor:
        """The head's logits (fp32) of raw image features.

        `text_features`: the base's raw text features, (n_cls, E) or per image (B, n_cls, E) (None:
        the cached or current ones). Linear head: with `labels` (training), the transformed text
        features of the labels are classified too, before the images. Similarity head: images
        against every class."""
        with torch.autocast(image_features.device.type, enabled=False):
            image = self.cwt_image(image_features.float())
            if self.head is None and labels is None and text_features is None:
                text_features = self.raw_text_features(image_features)
            if self.head is None:
                text = self.transform_text(text_features)
                return cosine_logits(normalize(image), normalize(text), self.logit_scale)
            if labels is not None:  # transform every class, then take the labels' (the authors' order of sums)
                text = self.transform_text(text_features)
                picked = text[labels] if text.dim() == 2 else text[torch.arange(len(labels), device=labels.device), labels]
                image = torch.cat([picked, image])
            return self.head(image)

    def transform_text(self, text_features: Tensor) -> Tensor:
        """CwT of raw text features in fp32; per image's set where there is one per image (the
        authors' loop: their CwT's gradient sums each image's part in turn)."""
        text = text_features.float()
        if text.dim() == 2:
            return self.cwt_text(text)
        return torch.stack([self.cwt_text(one) for one in text])

    def logits_from_image_features(self, features: Tensor) -> Tensor:
        """Evaluation logits from raw image features: the base's, mixed with the head's on the
        classes it was trained on. The linear head's logits alone (TEST_TIME_FUSION False) need no
        text pass: none is run (CoCoOp's would be one per image and class)."""
        if not self.reads_text_at_evaluation():
            return self.head_logits(features)
        text = self.raw_text_features(features)
        logits = self.logits(normalize(features), normalize(text))
        if not self.head_active:
            return logits
        head = self.head_logits(features, text)
        if not self.options.test_time_fusion:
            return head
        w = self.options.weight
        return (1 - w) * logits + w * head

    def forward(self, images: Tensor) -> Tensor:
        return self.logits_from_image_features(self.encode_images(images))

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        image = self.encode_images(images)
        text = self.base.encode_text(image)  # once for both logits, the head and the base's terms
        logits = self.logits(normalize(image), normalize(text))
        ce = F.cross_entropy(logits, labels)
        if self.head is None:  # the similarity head scores the images against every class
            head, head_labels = self.head_logits(image, text), labels
        else:  # the linear head also learns from the labels' text features
            head, head_labels = self.head_logits(image, text, labels), torch.cat([labels, labels])
        ce_head = F.cross_entropy(head, head_labels)
        w = self.options.weight
        loss = (1 - w) * ce + w * ce_head
        summary = {"ce": ce.item(), "ce_head": ce_head.item()}
        for name, (weight, value) in regularization_of(self.base, text).items():
            loss = loss + weight * value
            summary[name] = value.item()
        return loss, {"loss": loss.item(), **summary, "acc": accuracy(logits, labels)}

    # ---- training and checkpoints ------------------------------------------------------------

    def parameter_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        """The base's parameters at OPTIM.LR, the head's and CwT's at OPTIM.LR × LR_MULT."""
        extra = [p for m in (self.cwt_text, self.cwt_image, self.head) if m is not None for p in m.parameters()]
        base = [p for p in self.base.parameters() if p.requires_grad]
        return [(base, 1.0), (extra, self.options.lr_mult)]

    def fit_to_trained_classes(self, state: dict[str, Tensor], trained: Sequence[str] | None) -> dict[str, Tensor]:
        """`state` (saved for the classes `trained`) made to fit this model's classes.

        The head scores only classes it was trained on: when every class here is one of them, the
        linear head keeps their rows (ImageNet-A/-R from ImageNet); otherwise the head is dropped
        and these classes get the base's logits alone (new classes, another dataset).
        """
        if trained is None or list(trained) == self.classnames:
            return state
        trained = list(trained)
        state = dict(state)
        if all(name in trained for name in self.classnames):
            if self.head is not None:
                rows = torch.tensor([trained.index(name) for name in self.classnames])
                for key in ("head.weight", "head.bias"):
                    if key in state:
                        state[key] = state[key][rows.to(state[key].device)]
            return state
        self.head_active = False
        if self.head is not None:
            self.head = None
            for key in ("head.weight", "head.bias"):
                state.pop(key, None)
        return state


def regularization_of(base: PromptedCLIP, text_features: Tensor) -> dict[str, tuple[float, Tensor]]:
    """The base's loss terms beside its cross-entropy (KgCoOp's knowledge term), none for others."""
    terms = getattr(base, "regularization", None)
    return terms(text_features) if terms is not None else {}
