"""TCP against the authors' code (github.com/htyao89/Textual-based_Class-aware_prompt_tuning).

    python bench/compare/tcp.py /path/to/TCP-checkout      # the repository root

Their code fixes the text width to 512 and injects before text block 8, so the random CLIP here
has a 512-wide, 10-block text encoder (and a tiny image encoder). Both models get the same
weights, context and TKE weights, the same batch; we compare the training loss (CE + 8 (1 - mean
cos)), the logits, the hand-crafted features and the gradient of every learnable parameter
(context, both TKE layers). Ours runs on the exact slow path (77-token prompts, CLIP's block
forward) and on the default fast path (EOS cut, fused attention).

    python bench/compare/tcp.py /path/to/checkout --speed [--batch 4 --runs 5]

instead times one training step and one evaluation batch side by side on a random ViT-B/16 in fp32
(the base-to-new config: 4 context vectors, W 8, Caltech101's templates; 50 classes) and estimates one base-to-new run (see `common.time_method`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common import (PATHS, Speed, add_speed_arguments, dassl_like_cfg, eval_step, import_authors_file, loss_and_logits,
                    rel, report, schedule, speed_batch, speed_classes, their_custom_clip, time_method, train_step,
                    verdict)

from clipprompt.data.catalog import get_spec
from clipprompt.models import TCP
from clipprompt.models.tcp import TCPOptions, authors_templates
from clipprompt.backbones.random_clip import ClipShape, build_random_clip

CLASSNAMES = ["Apply_Eye_Makeup", "Basketball", "Boxing_Punching_Bag", "Rowing", "Yo_Yo", "sea lion"]
ROLES = {  # our parameter: theirs
    "ctx": "prompt_learner.ctx",
    "tke.linear1.weight": "prompt_learner.meta_net.linear1.weight",
    "tke.linear1.bias": "prompt_learner.meta_net.linear1.bias",
    "tke.linear2.weight": "prompt_learner.meta_net.linear2.weight",
    "tke.linear2.bias": "prompt_learner.meta_net.linear2.bias",
}


# Their text width is 512 and they inject before block 8; the image encoder can be tiny.
SHAPE = ClipShape(embed_dim=512, image_resolution=32, vision_layers=2, vision_width=128, vision_patch_size=8,
                  context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=10)


def compare(theirs_module, dataset: str, batch: int = 4) -> float:
    clip = build_random_clip(SHAPE)
    cfg = dassl_like_cfg(
        {"COOP": {"N_CTX": 4, "CTX_INIT": False, "CSC": False, "CLASS_TOKEN_POSITION": "end", "W": 1.0, "PREC": "fp32"},
         "COCOOP": {"PREC": "fp32"}},
        dataset, clip.visual.input_resolution,
    )
    torch.manual_seed(0)  # their random context and TKE weights (torch seeds itself randomly otherwise)
    theirs = their_custom_clip(theirs_module, cfg, CLASSNAMES, clip.state_dict(), learnable="prompt_learner")
    tail, anchor = authors_templates(dataset, get_spec(dataset).template)
    ours = TCP(clip, CLASSNAMES, TCPOptions(), template=tail, anchor_template=anchor)
    their_params = dict(theirs.named_parameters())
    with torch.no_grad():
        for mine, their in ROLES.items():
            ours.get_parameter(mine).copy_(their_params[their])
    assert {n for n, p in ours.named_parameters() if p.requires_grad} == set(ROLES)
    assert {n for n, p in theirs.named_parameters() if p.requires_grad} == set(ROLES.values())

    torch.manual_seed(1)
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.arange(batch) % len(CLASSNAMES)
    theirs.train()
    logits, their_loss = theirs(images, labels)
    their_loss.backward()

    worst = 0.0
    for mode, settings in PATHS.items():
        loss, our_logits = loss_and_logits(ours.configure(**settings), images, labels)
        rows = {"loss": rel(loss, their_loss), "logits": rel(our_logits, logits),
                "anchor (hand-crafted)": rel(ours.anchor, theirs.ori_embedding)}
        rows.update({f"grad {name}": rel(ours.get_parameter(name).grad, their_params[their].grad)
                     for name, their in ROLES.items()})
        worst = max(worst, report(f"TCP {dataset} {mode}", rows))
    return worst


def speed(checkout: Path, batch: int = 4, runs: int = 5) -> Speed:
    """Their CustomCLIP and our TCP (base-to-new config, Caltech101's templates) on one random ViT-B/16."""
    module = import_authors_file(checkout, "trainers/tcp.py", "authors_tcp")
    classnames = speed_classes()
    clip = build_random_clip("ViT-B/16")
    cfg = dassl_like_cfg(
        {"COOP": {"N_CTX": 4, "CTX_INIT": False, "CSC": False, "CLASS_TOKEN_POSITION": "end", "W": 8.0, "PREC": "fp32"},
         "COCOOP": {"PREC": "fp32"}}, "Caltech101", 224)
    torch.manual_seed(0)
    theirs = their_custom_clip(module, cfg, classnames, clip.state_dict(), learnable="prompt_learner")
    tail, anchor = authors_templates("Caltech101", get_spec("Caltech101").template)
    ours = TCP(clip, classnames, TCPOptions(), template=tail, anchor_template=anchor)
    their_params = dict(theirs.named_parameters())
    ours.load_trainable_state_dict({mine: their_params[their].detach() for mine, their in ROLES.items()})
    images, labels = speed_batch(batch, len(classnames))
    return time_method("TCP", schedule("TCP", "vit_b16_ep50_ctx4"), ours,
                       train_step(theirs, lambda: theirs(images, labels)[1]),
                       eval_step(theirs, lambda: theirs(images)), images, labels, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of the authors' TCP repository")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        speed(args.checkout, args.batch, args.runs)
        return 0
    theirs_module = import_authors_file(args.checkout, "trainers/tcp.py", "authors_tcp")
    # own prompt tail; own anchor; context over words
    worst = max(compare(theirs_module, dataset) for dataset in ("OxfordPets", "FGVCAircraft", "UCF101"))
    return verdict(worst, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
