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

from common import cpu_only, dassl_like_cfg, load_authors_module, random_clip, rel, report, their_clip

from clipprompt.data.catalog import get_spec
from clipprompt.models import KgCoOp
from clipprompt.models.kgcoop import KgCoOpOptions, authors_template

CLASSNAMES = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered"]


def compare(theirs_module, dataset: str, preset: str = "tiny", batch: int = 4) -> bool:
    clip = random_clip(preset)
    cfg = dassl_like_cfg(
        {"COOP": {"N_CTX": 4, "CTX_INIT": True, "CSC": False, "CLASS_TOKEN_POSITION": "end", "W": 8.0, "PREC": "fp32"},
         "COCOOP": {"PREC": "fp32"}},
        dataset, clip.visual.input_resolution,
    )
    theirs_module.load_clip_to_cpu = lambda cfg: their_clip(theirs_module.clip, clip)
    with cpu_only():
        theirs = theirs_module.CustomCLIP(cfg, CLASSNAMES, their_clip(theirs_module.clip, clip))
    for name, p in theirs.named_parameters():  # their trainer's rule: only "ctx" learns
        p.requires_grad_("ctx" in name)
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

    ok = True
    for mode, settings in (("exact (eos_cut=False, fused=False)", dict(eos_cut=False, fused=False)),
                           ("fast (default)", dict(eos_cut=True, fused=True))):
        ours.configure(**settings)
        ours.ctx.grad = None
        loss, _ = ours.loss(images, labels)
        loss.backward()
        with torch.no_grad():
            our_logits = ours(images)
        ok &= report(f"KgCoOp {dataset} {mode}", {
            "loss": rel(loss, their_loss),
            "logits": rel(our_logits, logits),
            "anchor (hand-crafted)": rel(ours.anchor, theirs.ori_embedding / theirs.ori_embedding.norm(dim=-1, keepdim=True)),
            "grad ctx": rel(ours.ctx.grad, their_grad),
        })
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of github.com/htyao89/KgCoOp")
    parser.add_argument("--preset", default="tiny", help="random CLIP shape (clipprompt.random_clip presets)")
    args = parser.parse_args()
    theirs_module = load_authors_module(args.checkout / "KgCoOp", "trainers/kgcoop.py", "authors_kgcoop")
    ok = True
    for dataset in ("DescribableTextures", "OxfordPets"):  # DTD: the authors' template differs from CoOp's
        ok &= compare(theirs_module, dataset, args.preset)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
