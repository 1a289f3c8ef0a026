"""Prompt-tuning methods as plain PyTorch modules over a frozen CLIP (no Dassl here)."""

from .base import PromptedCLIP
from .cocoop import CoCoOp
from .coop import CoOp
from .kgcoop import KgCoOp
from .maple import MaPLe
from .mpl import MPL
from .promptsrc import PromptSRC
from .sep import SEP
from .tcp import TCP
from .zeroshot import ZeroshotCLIP

__all__ = ["PromptedCLIP", "ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "TCP", "MaPLe", "PromptSRC", "SEP", "MPL"]
