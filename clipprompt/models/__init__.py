"""Prompt-tuning methods as plain PyTorch modules over a frozen CLIP (no Dassl here).

Each method's module declares its typed options (`XOptions`, the config node `TRAINER.X`) next to
the model that takes them: `CoOp(clip, classnames, CoOpOptions(n_ctx=4))`.
"""

from .base import PromptedCLIP
from .cocoop import CoCoOp, CoCoOpOptions
from .coop import CoOp, CoOpOptions
from .mpl import MPL, MPLOptions
from .sep import SEP, SEPOptions
from .zeroshot import ZeroshotCLIP, ZeroshotCLIPOptions

__all__ = [
    "PromptedCLIP", "ZeroshotCLIP", "CoOp", "CoCoOp", "SEP", "MPL",
    "ZeroshotCLIPOptions", "CoOpOptions", "CoCoOpOptions", "SEPOptions", "MPLOptions",
]
