"""Prompt-tuning methods as plain PyTorch modules over a frozen CLIP (no Dassl here).

Each method's module declares its typed options (`XOptions`, the config node `TRAINER.X`) next to
the model that takes them: `CoOp(clip, classnames, CoOpOptions(n_ctx=4))`.
"""

from .base import PromptedCLIP
from .cocoop import CoCoOp, CoCoOpOptions
from .coop import ContextOptions, CoOp, CoOpOptions
from .coprompt import CoPrompt, CoPromptOptions
from .dept import DePT, DePTOptions
from .hicropl import HiCroPL, HiCroPLOptions
from .ivlp import IVLP, IVLPOptions
from .kgcoop import KgCoOp, KgCoOpOptions
from .maple import MaPLe, MaPLeOptions
from .mma import MMA, MMAOptions
from .mmrl import MMRL, MMRLOptions
from .mmrlpp import MMRLpp, MMRLppOptions
from .mpl import MPL, MPLOptions
from .prograd import ProGrad, ProGradOptions
from .promptkd import PromptKD, PromptKDOptions
from .promptsrc import PromptSRC, PromptSRCOptions
from .sep import SEP, SEPOptions
from .tcp import TCP, TCPOptions
from .vpt import VPT, VPTOptions
from .zeroshot import ZeroshotCLIP, ZeroshotCLIPOptions

__all__ = [
    "PromptedCLIP", "DePT", "DePTOptions", "ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "ProGrad", "TCP", "VPT", "IVLP", "MaPLe", "PromptSRC", "SEP",
    "MMA", "MMAOptions", "MMRL", "MMRLOptions", "MMRLpp", "MMRLppOptions", "CoPrompt", "CoPromptOptions", "HiCroPL", "HiCroPLOptions", "PromptKD", "PromptKDOptions",
    "MPL", "ContextOptions", "ZeroshotCLIPOptions", "CoOpOptions", "CoCoOpOptions", "KgCoOpOptions", "TCPOptions",
    "ProGradOptions",
    "VPTOptions", "IVLPOptions", "MaPLeOptions", "PromptSRCOptions", "SEPOptions", "MPLOptions", "MMRLOptions",
]
