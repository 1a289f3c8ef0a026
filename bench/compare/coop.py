"""CoOp's class-specific context and class token positions against CoOp's code (KaiyangZhou/CoOp).

    python bench/compare/coop.py /path/to/CoOp-checkout      # the repository root

For each setting (CSC off/on × class token at the end, in the middle, at the front) both models
are built from the same random tiny CLIP in fp32 on the CPU, ours gets their (random) context, and
both see the same batch; we compare the cross-entropy loss, the logits and the gradient of the
context. Ours runs on the exact slow path (77-token prompts, CLIP's block forward) and on the
default fast path (EOS cut, fused attention).

    python bench/compare/coop.py /path/to/CoOp-checkout --speed [--batch 4 --runs 5]

instead times one training step and one evaluation batch side by side on a random ViT-B/16 in fp32
(the base-to-new config: 16 context vectors, class token at the end; 50 classes) and estimates one
base-to-new run (see `common.time_method`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common import (PATHS, Speed, add_speed_arguments, dassl_like_cfg, eval_step, import_authors_file, loss_and_logits,
                    rel, report, schedule, speed_batch, speed_classes, their_custom_clip, time_method, train_step,
                    verdict)

from clipprompt.models import CoOp
from clipprompt.models.coop import CoOpOptions
from clipprompt.backbones.random_clip import build_random_clip

CLASSNAMES = ["dog", "fire truck", "sea lion", "Yorkshire terrier", "owl"]
SETTINGS = [(False, "end", 4), (False, "middle", 3), (False, "front", 4),
            (True, "end", 4), (True, "middle", 5), (True, "front", 2)]


def compare(theirs_module, csc: bool, position: str, n_ctx: int, batch: int = 4) -> float:
    clip = build_random_clip("tiny")
    cfg = dassl_like_cfg({"COOP": {"N_CTX": n_ctx, "CTX_INIT": "", "CSC": csc, "CLASS_TOKEN_POSITION": position,
                                   "PREC": "fp32"}}, "Caltech101", clip.visual.input_resolution)
    torch.manual_seed(0)
    theirs = their_custom_clip(theirs_module, cfg, CLASSNAMES, clip.state_dict(), learnable="prompt_learner")
    ours = CoOp(clip, CLASSNAMES, CoOpOptions(n_ctx=n_ctx, csc=csc, class_token_position=position))
    with torch.no_grad():
        ours.ctx.copy_(theirs.prompt_learner.ctx)

    torch.manual_seed(1)
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.arange(batch) % len(CLASSNAMES)
    logits = theirs(images)
    their_loss = F.cross_entropy(logits, labels)
    their_loss.backward()

    worst = 0.0
    for mode, settings in PATHS.items():
        loss, our_logits = loss_and_logits(ours.configure(**settings), images, labels)
        worst = max(worst, report(f"CoOp CSC={csc} CLASS_TOKEN_POSITION={position} N_CTX={n_ctx}, {mode}", {
            "loss": rel(loss, their_loss),
            "logits": rel(our_logits, logits),
            "grad ctx": rel(ours.ctx.grad, theirs.prompt_learner.ctx.grad),
        }))
    return worst


def speed(checkout: Path, batch: int = 4, runs: int = 5) -> Speed:
    """Their CustomCLIP and our CoOp (base-to-new config) on one random ViT-B/16, timed side by side."""
    module = import_authors_file(checkout, "trainers/coop.py", "authors_coop")
    classnames = speed_classes()
    clip = build_random_clip("ViT-B/16")
    cfg = dassl_like_cfg({"COOP": {"N_CTX": 16, "CTX_INIT": "", "CSC": False, "CLASS_TOKEN_POSITION": "end",
                                   "PREC": "fp32"}}, "Caltech101", 224)
    torch.manual_seed(0)
    theirs = their_custom_clip(module, cfg, classnames, clip.state_dict(), learnable="prompt_learner")
    ours = CoOp(clip, classnames, CoOpOptions(n_ctx=16))
    with torch.no_grad():
        ours.ctx.copy_(theirs.prompt_learner.ctx)
    images, labels = speed_batch(batch, len(classnames))
    return time_method("CoOp", schedule("CoOp", "vit_b16_ep50"), ours,
                       train_step(theirs, lambda: F.cross_entropy(theirs(images), labels)),
                       eval_step(theirs, lambda: theirs(images)), images, labels, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of github.com/KaiyangZhou/CoOp")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        speed(args.checkout, args.batch, args.runs)
        return 0
    theirs_module = import_authors_file(args.checkout, "trainers/coop.py", "authors_coop")
    worst = max(compare(theirs_module, csc, position, n_ctx) for csc, position, n_ctx in SETTINGS)
    return verdict(worst, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
