"""KgCoOp against the authors' code (github.com/htyao89/KgCoOp): loss, logits, gradients.

    python bench/compare/kgcoop.py /path/to/KgCoOp-checkout      # the repository root

Both models are built from the same random CLIP (tiny shapes, fp32, CPU), with the same
context (the "a photo of a" initialisation plus noise, so the knowledge term is not zero),
fed the same batch; we compare the training loss (CE + W * (1 - mean cos)), the logits and the
gradient of the context. Ours runs twice: the exact slow path (77-token prompts, CLIP's block
forward) and the default fast path (EOS cut, fused attention).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common import PATHS, dassl_like_cfg, import_authors_file, loss_and_logits, rel, report, their_custom_clip, verdict

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of github.com/htyao89/KgCoOp")
    parser.add_argument("--preset", default="tiny", help="random CLIP shape (clipprompt.backbones.random_clip presets)")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    theirs_module = import_authors_file(args.checkout / "KgCoOp", "trainers/kgcoop.py", "authors_kgcoop")
    # DTD: the authors' template differs from CoOp's
    worst = max(compare(theirs_module, dataset, args.preset) for dataset in ("DescribableTextures", "OxfordPets"))
    return verdict(worst, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
