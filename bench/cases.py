"""What the benchmarks run, each written once: the methods as the papers configure them, and one
training step as the trainers take it."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's clipprompt

from clipprompt.models import MPL, SEP, CoCoOp, CoOp, DePT, PromptedCLIP, ZeroshotCLIP  # noqa: E402
from clipprompt.models.cocoop import CoCoOpOptions  # noqa: E402
from clipprompt.models.coop import CoOpOptions  # noqa: E402
from clipprompt.models.ivlp import IVLP, IVLPOptions  # noqa: E402
from clipprompt.models.kgcoop import KgCoOp, KgCoOpOptions  # noqa: E402
from clipprompt.models.coprompt import CoPrompt, CoPromptOptions  # noqa: E402
from clipprompt.models.maple import MaPLe, MaPLeOptions  # noqa: E402
from clipprompt.models.mma import MMA, MMAOptions  # noqa: E402
from clipprompt.models.mmrl import MMRL, MMRLOptions  # noqa: E402
from clipprompt.models.mmrlpp import MMRLpp, MMRLppOptions  # noqa: E402
from clipprompt.models.hicropl import HiCroPL, HiCroPLOptions  # noqa: E402
from clipprompt.models.promptkd import PromptKD, PromptKDOptions  # noqa: E402
from clipprompt.models.mpl import MPLOptions  # noqa: E402
from clipprompt.models.prograd import ProGrad, ProGradOptions  # noqa: E402
from clipprompt.models.promptsrc import PromptSRC, PromptSRCOptions  # noqa: E402
from clipprompt.models.sep import SEPOptions  # noqa: E402
from clipprompt.models.tcp import TCP, TCPOptions  # noqa: E402
from clipprompt.models.vpt import VPT, VPTOptions  # noqa: E402

METHODS = ("ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "ProGrad", "TCP", "SEP", "MPL", "VPT", "IVLP", "MaPLe", "PromptSRC", "MMA", "MMRL",
           "MMRLpp", "CoPrompt", "HiCroPL", "PromptKD", "CoOp_DePT", "CoCoOp_DePT", "KgCoOp_DePT", "MaPLe_DePT")  # README's order
IMAGE_CONDITIONED = ("CoCoOp", "MPL", "CoCoOp_DePT")  # one text pass per (image, class) pair


def build(method: str, clip, classnames: list[str], chunk: int = 0, **options) -> PromptedCLIP:
    """`method` with its paper's prompt sizes (its config file's), on `clip`'s device.

    `chunk`: TEXT_CHUNK of the image-conditioned methods (0: the options' default);
    `options`: further option fields, e.g. `official_compat=True` for SEP.
    """
    chunked = {"text_chunk": chunk} if chunk else {}
    if method.endswith("_DePT"):  # the base as its DePT config sets it (KgCoOp's W 2.0), inside DePT
        base_options = {"w": 2.0} if method == "KgCoOp_DePT" else {}
        return DePT(build(method.removesuffix("_DePT"), clip, classnames, chunk, **base_options, **options)).to(clip.logit_scale.device)
    if method == "ZeroshotCLIP":
        model = ZeroshotCLIP(clip, classnames)
    elif method == "CoOp":
        model = CoOp(clip, classnames, CoOpOptions(n_ctx=16, **options))
    elif method == "CoCoOp":
        model = CoCoOp(clip, classnames, CoCoOpOptions(n_ctx=4, ctx_init="a photo of a", **chunked, **options))
    elif method == "SEP":
        model = SEP(clip, classnames, SEPOptions(**options))
    elif method == "MPL":
        model = MPL(clip, classnames, MPLOptions(**chunked, **options))
    elif method == "KgCoOp":
        model = KgCoOp(clip, classnames, KgCoOpOptions(**options))
    elif method == "ProGrad":
        model = ProGrad(clip, classnames, ProGradOptions(**options))
    elif method == "TCP":
        model = TCP(clip, classnames, TCPOptions(layer=min(8, len(clip.transformer.resblocks) - 1), **options))
    elif method == "VPT":
        model = VPT(clip, classnames, VPTOptions(prompt_depth_vision=_depth(clip, 12), **options))
    elif method == "IVLP":
        depth = _depth(clip, 12)
        model = IVLP(clip, classnames, IVLPOptions(prompt_depth_text=depth, prompt_depth_vision=depth, **options))
    elif method == "MaPLe":
        model = MaPLe(clip, classnames, MaPLeOptions(prompt_depth=_depth(clip, 9), **options))
    elif method == "PromptSRC":
        depth = _depth(clip, 9)
        model = PromptSRC(clip, classnames, PromptSRCOptions(prompt_depth_text=depth, prompt_depth_vision=depth, **options))
    elif method == "MMA":
        model = MMA(clip, classnames, MMAOptions(adapter_start=min(5, _depth(clip, 12)), adapter_end=_depth(clip, 12), **options))
    elif method in ("MMRL", "MMRLpp"):
        blocks = _depth(clip, 12)
        model_class, options_class = (MMRL, MMRLOptions) if method == "MMRL" else (MMRLpp, MMRLppOptions)
        model = model_class(clip, classnames, options_class(rep_layers=list(range(max(1, blocks - 6), blocks + 1)), **options))
    elif method == "CoPrompt":  # its targets: frozen CLIP's features of a few descriptions per class
        descriptions = [[f"a photo of a {name}.", f"a {name}, seen up close."] for name in classnames]
        model = CoPrompt(clip, classnames, CoPromptOptions(prompt_depth=_depth(clip, 9), **options), descriptions)
    elif method == "HiCroPL":  # the base-to-new config's 16 tokens, J 12 and k 6 (shallower CLIPs: J its depth, k half)
        depth = _depth(clip, 12)
        model = HiCroPL(clip, classnames, HiCroPLOptions(n_ctx=16, ctx_init="", prompt_depth=depth,
                                                         cross_layer=max(1, depth // 2), **options))
    elif method == "PromptKD":  # its teacher here: a PromptSRC on the same CLIP (the paper's is a ViT-L/14)
        depth = _depth(clip, 9)
        teacher = PromptSRC(clip, classnames, PromptSRCOptions(prompt_depth_text=depth, prompt_depth_vision=depth))
        model = PromptKD(clip, classnames, PromptKDOptions(teacher_checkpoint="bench", prompt_depth_vision=depth, **options),
                         teacher)
    else:
        raise ValueError(f"Unknown method {method!r}; available: {', '.join(METHODS)}")
    model = model.to(clip.logit_scale.device)
    if isinstance(model, SEP):  # prototypes as training sets them (class means; random features here)
        model.init_prototypes(torch.randn(len(classnames), clip.text_projection.shape[1], device=clip.logit_scale.device))
    return model


def _depth(clip, depth: int) -> int:
    """The paper's prompt depth, capped at the blocks of a small preset."""
    return min(depth, len(clip.transformer.resblocks), len(clip.visual.transformer.resblocks))


def classnames(n: int) -> list[str]:
    return [f"class number {i}" for i in range(n)]


def train_step(model: PromptedCLIP, optim: torch.optim.Optimizer, precision, images, labels):
    """One training step as the trainers take it: autocast, loss, scaled backward, update."""
    scaler = torch.amp.GradScaler(images.device.type, enabled=precision.uses_grad_scaler)

    def step() -> None:
        model.train()
        with precision.autocast():
            loss, _ = model.loss(images, labels)
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()

    return step
