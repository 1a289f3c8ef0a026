"""KgCoOp against the authors' code (github.com/htyao89/KgCoOp): loss, logits, gradients.

    python bench/compare/kgcoop.py /path/to/KgCoOp-checkout      # the repository root

Both models are built from the same random CLIP (tiny shapes, fp32, CPU), with the same
context (the "a photo of a" initialisation plus noise, so the knowledge term is not zero),
fed the same batch; we compare the training loss (CE + W * (1 - mean cos)), the logits and the
gradient of the context. Ours runs twice: the exact slow path (77-token prompts, CLIP's block
forward) and the default fast path (EOS cut, fused attention).

    python bench/compare/kgcoop.py /path/to/checkout --speed [--batch 4 --runs 5]

instead times one training step and one evaluation batch side by side on a random ViT-B/16 in fp32
(the base-to-new config: "a photo of a" context, W 8; 50 classes) and estimates one base-to-new run (see `common.time_method`).
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

from clipprompt.data.catalog import get_spec
from clipprompt.models import KgCoOp
from clipprompt.models.kgcoop import KgCoOpOptions, authors_template
from clipprompt.backbones.random_clip import build_random_clip

CLASSNAMES = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered"]


def compare(theirs_module, dataset: str, preset: str = "tiny", batch: int = 4) -> float:
    clip = build_random_clip(preset)
    cfg = dassl_like_cfg(
        {"COOP": {"N_CTX": 4, "CTX_INIT": True, "CSC": False, "CLASS_TOKEN_POSITION": "end", "W": 8.0, "PREC": "fp32"},
         "COCOOP": {"PREC": "fp32"}},
        dataset, clip.visual.input_resolution,
    )
    theirs = their_custom_clip(theirs_module, cfg, CLASSNAMES, clip.state_dict(), learnable="ctx")
    template = authors_template(get_spec(dataset).name, get_spec(dataset).template)
    ours = KgCoOp(clip, CLASSNAMES, KgCoOpOptions(w=8.0), template=template)

    torch.manual_seed(1)
    ctx = theirs.prompt_learner.ctx.detach() + 0.05 * torch.randn_like(theirs.prompt_learner.ctx)
    with torch.no_grad():
        theirs.prompt_learner.ctx.copy_(ctx)
        ours.ctx.copy_(ctx)
    images = torch.randn(batch, 3, clip.visual.input_resolution, clip.visual.input_resolution)
    labels = torch.arange(batch) % len(CLASSNAMES)

    logits, score = theirs(images)
    their_loss = F.cross_entropy(logits, labels) + 8.0 * score
    their_loss.backward()
    their_grad = theirs.prompt_learner.ctx.grad

    worst = 0.0
    for mode, settings in PATHS.items():
        loss, our_logits = loss_and_logits(ours.configure(**settings), images, labels)
        worst = max(worst, report(f"KgCoOp {dataset} {mode}", {
            "loss": rel(loss, their_loss),
            "logits": rel(our_logits, logits),
            "anchor (hand-crafted)": rel(ours.anchor, theirs.ori_embedding / theirs.ori_embedding.norm(dim=-1, keepdim=True)),
            "grad ctx": rel(ours.ctx.grad, their_grad),
        }))
    return worst


def speed(checkout: Path, batch: int = 4, runs: int = 5) -> Speed:
    """Their CustomCLIP and our KgCoOp (base-to-new config, Caltech101's template) on one random ViT-B/16."""
    module = import_authors_file(checkout / "KgCoOp", "trainers/kgcoop.py", "authors_kgcoop")
    classnames = speed_classes()
    clip = build_random_clip("ViT-B/16")
    cfg = dassl_like_cfg(
        {"COOP": {"N_CTX": 4, "CTX_INIT": True, "CSC": False, "CLASS_TOKEN_POSITION": "end", "W": 8.0, "PREC": "fp32"},
         "COCOOP": {"PREC": "fp32"}}, "Caltech101", 224)
    theirs = their_custom_clip(module, cfg, classnames, clip.state_dict(), learnable="ctx")
    ours = KgCoOp(clip, classnames, KgCoOpOptions(w=8.0), template=authors_template("Caltech101", "a photo of a {}."))
    images, labels = speed_batch(batch, len(classnames))

    def their_loss():
        logits, score = theirs(images)
        return F.cross_entropy(logits, labels) + 8.0 * score

    return time_method("KgCoOp", schedule("KgCoOp", "vit_b16_ep100_ctxv1"), ours, train_step(theirs, their_loss),
                       eval_step(theirs, lambda: theirs(images)), images, labels, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of github.com/htyao89/KgCoOp")
    parser.add_argument("--preset", default="tiny", help="random CLIP shape (clipprompt.backbones.random_clip presets)")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        speed(args.checkout, args.batch, args.runs)
        return 0
    theirs_module = import_authors_file(args.checkout / "KgCoOp", "trainers/kgcoop.py", "authors_kgcoop")
    # DTD: the authors' template differs from CoOp's
    worst = max(compare(theirs_module, dataset, args.preset) for dataset in ("DescribableTextures", "OxfordPets"))
    return verdict(worst, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
