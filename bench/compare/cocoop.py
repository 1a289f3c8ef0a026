"""CoCoOp against the authors' code (KaiyangZhou/CoOp, trainers/cocoop.py): loss, logits, every gradient.

    python bench/compare/cocoop.py /path/to/CoOp-checkout [--preset ViT-B/16]

Both models are built from the same random CLIP in fp32 on the CPU (their `CustomCLIP` on their
fork of CLIP, `.cuda()` made a no-op); ours gets their context ("a photo of a") and their meta-net's
random weights, and both see the same batch. Their training forward returns the cross-entropy (the
whole loss: CoCoOp has one term); their logits come from the model in eval mode. Ours runs on the
exact slow path (77-token prompts, CLIP's block forward) and on the default fast path (EOS cut,
fused attention).

    python bench/compare/cocoop.py /path/to/CoOp-checkout --speed [--batch 4 --runs 5]

instead times one training step and one evaluation batch side by side on a random ViT-B/16 in fp32
(50 classes) and estimates one base-to-new run (see `common.time_method`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common import (PATHS, SHAPES, Speed, add_preset_argument, add_speed_arguments, dassl_like_cfg, eval_step,
                    import_authors_file, loss_and_logits, rel, report, schedule, speed_batch, speed_classes,
                    their_custom_clip, time_method, train_step, verdict)

from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.models import CoCoOp
from clipprompt.models.cocoop import CoCoOpOptions

CLASSNAMES = ["dog", "fire_truck", "sea lion", "Yorkshire terrier", "owl"]
CTX_INIT = "a photo of a"
# their parameter name -> ours
ROLES = {
    "prompt_learner.ctx": "ctx",
    "prompt_learner.meta_net.linear1.weight": "meta_net.0.weight",
    "prompt_learner.meta_net.linear1.bias": "meta_net.0.bias",
    "prompt_learner.meta_net.linear2.weight": "meta_net.2.weight",
    "prompt_learner.meta_net.linear2.bias": "meta_net.2.bias",
}


def build_pair(module, preset: str, classnames=CLASSNAMES):
    """Their CustomCLIP and our CoCoOp on one random CLIP, with their random prompt weights in ours."""
    clip = build_random_clip(SHAPES[preset])
    cfg = dassl_like_cfg({"COCOOP": {"N_CTX": 4, "CTX_INIT": CTX_INIT, "PREC": "fp32"}}, "Caltech101",
                         clip.visual.input_resolution)
    torch.manual_seed(0)
    theirs = their_custom_clip(module, cfg, classnames, clip.state_dict(), learnable="prompt_learner")
    learnable = {name for name, p in theirs.named_parameters() if p.requires_grad}
    assert learnable == set(ROLES), sorted(learnable ^ set(ROLES))
    ours = CoCoOp(clip, classnames, CoCoOpOptions(n_ctx=4, ctx_init=CTX_INIT))
    ours.load_trainable_state_dict({mine: theirs.get_parameter(their).detach() for their, mine in ROLES.items()})
    return theirs, ours


def batch_of(clip_resolution: int, size: int = 4):
    torch.manual_seed(1)
    images = torch.randn(size, 3, clip_resolution, clip_resolution)
    return images, torch.arange(size) % len(CLASSNAMES)


def speed(checkout: Path, batch: int = 4, runs: int = 5) -> Speed:
    """Their CustomCLIP and our CoCoOp on one random ViT-B/16, timed side by side."""
    module = import_authors_file(checkout, "trainers/cocoop.py", "authors_cocoop")
    theirs, ours = build_pair(module, "ViT-B/16", speed_classes())
    images, labels = speed_batch(batch, ours.num_classes)
    return time_method("CoCoOp", schedule("CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1"), ours,
                       train_step(theirs, lambda: theirs(images, labels)), eval_step(theirs, lambda: theirs(images)),
                       images, labels, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of github.com/KaiyangZhou/CoOp")
    add_preset_argument(parser)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        speed(args.checkout, args.batch, args.runs)
        return 0
    module = import_authors_file(args.checkout, "trainers/cocoop.py", "authors_cocoop")
    theirs, ours = build_pair(module, args.preset)
    images, labels = batch_of(ours.image_encoder.input_resolution)

    theirs.train()
    their_loss = theirs(images, labels)  # their training forward: the cross-entropy
    their_loss.backward()
    theirs.eval()
    with torch.no_grad():
        their_logits = theirs(images)

    worst = 0.0
    for mode, settings in PATHS.items():
        loss, logits = loss_and_logits(ours.configure(**settings), images, labels)
        rows = {"loss (CE, the only term)": rel(loss, their_loss), "logits": rel(logits, their_logits)}
        rows.update({f"grad {mine} ({their})": rel(ours.get_parameter(mine).grad, theirs.get_parameter(their).grad)
                     for their, mine in ROLES.items()})
        worst = max(worst, report(f"CoCoOp, {args.preset}, {mode}", rows))
    return verdict(worst, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
