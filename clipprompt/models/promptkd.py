"""PromptKD (Li et al., CVPR 2024): a prompted ViT-B/16 student distilled from a PromptSRC teacher.

The teacher is a PromptSRC model (`models/promptsrc.py`) on a larger CLIP (ViT-L/14 in the paper),
trained first with labels and then frozen. The student is a CLIP whose image encoder gets deep
visual prompts (VPT-deep: n_v tokens appended after the positional embedding, replaced before
vision blocks 1..J-1) and a projector from its embedding to the teacher's (Linear, BatchNorm,
ReLU, Linear: the authors' 1x1 convolutions on a 1x1 map). The student has no text side: it
classifies against the teacher's class text features g_t, which are a constant of the frozen
teacher and are computed once. Training uses the images only (labels are never read):

    L = KD_WEIGHT · T² · Σ KL(softmax(s_t·f_t·g_tᵀ / T) ‖ softmax(s·P(f)·g_tᵀ / T)) / (B·C)

with f the student's prompted image feature, P the projector (its output normalized), f_t the
teacher's prompted image feature, s and s_t the two CLIPs' logit scales, C the training classes.
The teacher's image logits are a frozen pass too, but on augmented images (a new random crop and
flip every epoch), so they are computed per batch: caching them would train on one epoch's crops.
At evaluation the teacher's image tower never runs (the authors' code runs it on every test batch
and discards the result).

Open choices: `TRAIN_ON` (all training images, every class, as the paper; or only the evaluated
classes'), `HALF_PROMPTS` (the authors' fp16 rounding of the visual prompts).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, UserError
from ..options import MethodOptions, option, register_options
from .base import normalize
from .deep_prompts import DeepVisualPrompts
from .promptsrc import GPA_PREFIX, PromptSRC, PromptSRCOptions

KEY = "TRAINER.PROMPTKD"
AUTHORS_CTX_INIT = "a photo of a"  # the words the authors' teachers start from (their config)
# The authors' PromptSRC checkpoints (Dassl's, the whole CustomCLIP's state dict): the learned tensors.
_AUTHORS_DEEP = re.compile(r"^(image|text)_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$")


@register_options("PROMPTKD")
@dataclass
class PromptKDOptions(MethodOptions):
    n_ctx_vision: int = option(4, "the student's visual prompt tokens per prompted block", min=1)
    prompt_depth_vision: int = option(9, "the student's vision blocks with prompts (1 = the input only)", min=1)
    teacher_backbone: str = option(
        "ViT-L/14", "the teacher's CLIP: a model name, a checkpoint file or openclip:<ARCH>:<WEIGHTS> (as MODEL.BACKBONE.NAME)"
    )
    teacher_checkpoint: str = option(
        "",
        "the trained PromptSRC teacher: a checkpoint of our PromptSRC trainer, its run folder, or the authors' "
        "released teacher file (model-best.pth.tar); the trainer requires it",
    )
    temperature: float = option(1.0, "T: the distillation temperature", above=0)
    kd_weight: float = option(1.0, "weight of the distillation loss (the authors' scripts: 1000, or 200 on 3 datasets)", min=0)
    train_on: str = option(
        "all",
        "training images: all = every class's, unlabeled (the paper); eval = only the classes being evaluated "
        "(DATASET.SUBSAMPLE_CLASSES)",
        choices=("all", "eval"),
    )
    half_prompts: bool = option(
        False, "round the student's visual prompts and the teacher's prompts to fp16 at every precision, as the authors' code does"
    )



@dataclass(frozen=True)
class TeacherPrompts:
    """A PromptSRC teacher's learned tensors in our names, and the options that shape them."""

    state: dict[str, Tensor]
    options: PromptSRCOptions
    origin: str  # "ours" or "authors'"


def teacher_prompts(checkpoint: Mapping, path: str) -> TeacherPrompts:
    """The teacher's prompts from a checkpoint of our PromptSRC trainer or of the authors' code.

    Ours hold `ctx`, `deep_text.*`, `visual_ctx`, `deep_visual.*` (and GPA's running sum while a run
    is unfinished, which is not the teacher); the authors' hold their whole model, of which
    `prompt_learner.ctx`, `image_encoder.VPT` and each block's `VPT_shallow` are learned. Anything
    else is refused in one line naming `path`.
    """
    state = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise UserError(f"{KEY}.TEACHER_CHECKPOINT {path} holds no state_dict; expected a PromptSRC checkpoint.")
    if "ctx" in state:  # ours
        saved_by = checkpoint.get("trainer")
        if saved_by not in (None, "PromptSRC"):
            raise UserError(f"{KEY}.TEACHER_CHECKPOINT {path} was saved by trainer {saved_by}, not PromptSRC.")
        learned = {k: v for k, v in state.items() if not k.startswith(GPA_PREFIX)}
        config = checkpoint.get("config") or {}
        ctx_init = config.get("TRAINER.PROMPTSRC.CTX_INIT", AUTHORS_CTX_INIT)
        origin = "ours"
    elif "prompt_learner.ctx" in state:  # the authors'
        learned = {"ctx": state["prompt_learner.ctx"]}
        if "image_encoder.VPT" in state:
            learned["visual_ctx"] = state["image_encoder.VPT"]
        for name, value in state.items():
            match = _AUTHORS_DEEP.match(name)
            if match:
                tower, block = match.groups()
                learned[f"deep_{'visual' if tower == 'image' else tower}.{int(block) - 1}"] = value
        ctx_init, origin = AUTHORS_CTX_INIT, "authors'"
    else:
        raise UserError(
            f"{KEY}.TEACHER_CHECKPOINT {path} is not a PromptSRC checkpoint (no 'ctx' or 'prompt_learner.ctx' "
            "in its state_dict)."
        )
    learned = {k: v.detach().float() for k, v in learned.items()}
    depth = {side: sum(1 for k in learned if k.startswith(f"deep_{side}.")) + 1 for side in ("text", "visual")}
    visual = learned.get("visual_ctx")
    options = PromptSRCOptions(
        n_ctx_text=learned["ctx"].shape[0],
        n_ctx_vision=visual.shape[0] if visual is not None else 0,
        ctx_init=ctx_init,
        prompt_depth_text=depth["text"],
        prompt_depth_vision=depth["visual"] if visual is not None else 0,
        gpa=False,
    )
    return TeacherPrompts(learned, options, origin)


def build_teacher(clip: nn.Module, classnames: Sequence[str], prompts: TeacherPrompts, path: str,
                  half_prompts: bool = False) -> PromptSRC:
    """The frozen PromptSRC teacher on `clip` with `prompts` loaded (`half_prompts`: the authors' fp16
    rounding of its prompts); a file that does not fit this CLIP (another width, too deep) is one
    line naming `path`."""
    try:
        teacher = PromptSRC(clip, classnames, dataclasses.replace(prompts.options, half_prompts=half_prompts))
        teacher.load_trainable_state_dict(prompts.state)
    except (ValueError, ConfigError) as exc:
        raise UserError(
            f"{KEY}.TEACHER_CHECKPOINT {path} does not fit the teacher CLIP ({KEY}.TEACHER_BACKBONE): {exc}"
        ) from None
    return teacher.requires_grad_(False).eval()


def projector(in_dim: int, out_dim: int) -> nn.Sequential:
    """The student's feature projector, the authors' module: Conv1x1-BN-ReLU-Conv1x1 on a 1x1 map.

    Linear layers and BatchNorm1d compute the same function, but other kernels: their last bits
    differ, and BatchNorm's backward over a small batch (a difference of nearly equal terms)
    magnifies that to ~1e-4 in the gradients of everything before it."""
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, 1), nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True),
                         nn.Conv2d(out_dim, out_dim, 1))


class PromptKD(DeepVisualPrompts):
    """Deep visual prompts and a projector, classifying against a frozen teacher's text features.

    `classnames` are the classes evaluated; `train_classnames` those the distillation spreads the
    teacher's probabilities over (all of the dataset's with TRAIN_ON all; default `classnames`).
    """

    def __init__(
        self,
        clip: nn.Module,
        classnames: Sequence[str],
        options: PromptKDOptions,
        teacher: PromptSRC,
        train_classnames: Sequence[str] | None = None,
    ):
        super().__init__(clip, classnames)
        self.options = options
        self.require_image_tokens()
        self.init_visual_prompts(options.n_ctx_vision, options.prompt_depth_vision, KEY)
        self.projector = projector(self.embed_dim, teacher.embed_dim)
        self.teacher = teacher.requires_grad_(False)
        self.train_classnames = list(train_classnames or classnames)
        index = {name: i for i, name in enumerate(teacher.classnames)}
        missing = [n for n in {*self.classnames, *self.train_classnames} if n not in index]
        if missing:
            raise ValueError(f"The teacher was built without the classes {sorted(missing)}")
        self.register_buffer("eval_index", torch.tensor([index[n] for n in self.classnames]), persistent=False)
        self.register_buffer("train_index", torch.tensor([index[n] for n in self.train_classnames]), persistent=False)
        self._teacher_text: tuple[tuple, Tensor] | None = None

    def train(self, mode: bool = True) -> "PromptKD":
        super().train(mode)
        self.teacher.eval()  # frozen: always as evaluated
        return self

    # ---- checkpoints: the learned tensors and the projector's BatchNorm statistics --------------

    def trainable_state_dict(self) -> dict[str, Tensor]:
        state = super().trainable_state_dict()
        state.update({f"projector.{name}": b.detach() for name, b in self.projector.named_buffers()})
        return state

    def load_trainable_state_dict(self, state: dict[str, Tensor]) -> None:
        buffers = {f"projector.{name}": b for name, b in self.projector.named_buffers()}
        missing = sorted(set(buffers) - set(state))
        if missing:
            raise ValueError(f"The checkpoint does not fit this model: missing {missing}")
        super().load_trainable_state_dict({k: v for k, v in state.items() if k not in buffers})
        with torch.no_grad():
            for name, buffer in buffers.items():
                buffer.copy_(state[name])

    # ---- features ------------------------------------------------------------------------------

    def teacher_text_features(self) -> Tensor:
        """g_t of every class the teacher knows (normalized, fp32): computed once per device and path.

        Exact: the teacher is frozen and its text side reads no image, so every call would give the
        same bits (`tests/test_promptkd.py` checks it)."""
        key = (self.logit_scale.device, self.text_encoder_paths())
        if self._teacher_text is None or self._teacher_text[0] != key:
            with torch.no_grad():
                self._teacher_text = key, self.teacher.class_text_features().float()
        return self._teacher_text[1]

    def text_encoder_paths(self) -> tuple:
        """What the teacher's text features depend on besides its weights: the fast-path switches."""
        prompts = self.teacher.prompts
        return bool(prompts.cut), bool(self.teacher.text_encoder.fused)

    def class_text_features(self) -> Tensor:
        """The teacher's text features of the evaluated classes."""
        return self.teacher_text_features()[self.eval_index]

    def image_features(self, images: Tensor) -> Tensor:
        """The student's projected, normalized image features (B, teacher's embed_dim)."""
        return normalize(self.encode_images(images))

    def encode_images(self, images: Tensor) -> Tensor:
        """The projected image features before normalization."""
        raw = self.raw_prompted_images(images, [self.visual_ctx, *self.deep_visual])
        return self.projector(raw.to(self.projector[0].weight.dtype)[..., None, None]).flatten(1)

    @torch.no_grad()
    def teacher_logits(self, images: Tensor) -> Tensor:
        """The frozen teacher's logits over the training classes (its own logit scale)."""
        features = self.teacher.image_features(images)
        return self.teacher.logits(features, self.teacher_text_features()[self.train_index])

    # ---- training ------------------------------------------------------------------------------

    def loss(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """The distillation loss; `labels` are not read (the training images count as unlabeled)."""
        options, t = self.options, self.options.temperature
        teacher_logits = self.teacher_logits(images)
        logits = self.logits(self.image_features(images), self.teacher_text_features()[self.train_index])
        kd = F.kl_div(
            F.log_softmax(logits / t, dim=1), F.softmax(teacher_logits / t, dim=1), reduction="sum"
        ) * (t * t) / logits.numel()
        loss = options.kd_weight * kd
        agree = (logits.argmax(dim=1) == teacher_logits.argmax(dim=1)).float().mean().item() * 100.0
        return loss, {"loss": loss.item(), "kd": kd.item(), "agree": agree}
