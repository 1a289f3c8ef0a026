"""TCP against the authors' code (github.com/htyao89/Textual-based_Class-aware_prompt_tuning).

    python bench/compare/tcp.py /path/to/TCP-checkout      # the repository root

Their code fixes the text width to 512 and injects before text block 8, so the random CLIP here
has a 512-wide, 10-block text encoder (and a tiny image encoder). Both models get the same
weights, context and TKE weights, the same batch; we compare the training loss (CE + 8 (1 - mean
cos)), the logits, the hand-crafted features and the gradient of every learnable parameter
(context, both TKE layers). Ours runs on the exact slow path (77-token prompts, CLIP's block
forward) and on the default fast path (EOS cut, fused attention).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common import cpu_only, dassl_like_cfg, load_authors_module, rel, report, their_clip

from clipprompt._clip import clip_model
from clipprompt.data.catalog import get_spec
from clipprompt.models import TCP
from clipprompt.models.tcp import TCPOptions, authors_templates

CLASSNAMES = ["Apply_Eye_Makeup", "Basketball", "Boxing_Punching_Bag", "Rowing", "Yo_Yo", "sea lion"]
ROLES = {  # our parameter: theirs
    "ctx": "prompt_learner.ctx",
    "tke.linear1.weight": "prompt_learner.meta_net.linear1.weight",
    "tke.linear1.bias": "prompt_learner.meta_net.linear1.bias",
    "tke.linear2.weight": "prompt_learner.meta_net.linear2.weight",
    "tke.linear2.bias": "prompt_learner.meta_net.linear2.bias",
}


def random_clip(seed: int = 0) -> clip_model.CLIP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return clip_model.CLIP(embed_dim=512, image_resolution=32, vision_layers=2, vision_width=128,
                               vision_patch_size=8, context_length=77, vocab_size=49408,
                               transformer_width=512, transformer_heads=8, transformer_layers=10).eval()


def compare(theirs_module, dataset: str, batch: int = 4) -> bool:
    clip = random_clip()
    cfg = dassl_like_cfg(
        {"COOP": {"N_CTX": 4, "CTX_INIT": False, "CSC": False, "CLASS_TOKEN_POSITION": "end", "W": 1.0, "PREC": "fp32"},
         "COCOOP": {"PREC": "fp32"}},
        dataset, clip.visual.input_resolution,
    )
    theirs_module.load_clip_to_cpu = lambda cfg: their_clip(theirs_module.clip, clip)
    with cpu_only():
        theirs = theirs_module.CustomCLIP(cfg, CLASSNAMES, their_clip(theirs_module.clip, clip))
    for name, p in theirs.named_parameters():  # their trainer's rule
        p.requires_grad_("prompt_learner" in name)
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

    ok = True
    for mode, settings in (("exact (eos_cut=False, fused=False)", dict(eos_cut=False, fused=False)),
                           ("fast (default)", dict(eos_cut=True, fused=True))):
        ours.configure(**settings)
        ours.zero_grad()
        loss, _ = ours.loss(images, labels)
        loss.backward()
        with torch.no_grad():
            our_logits = ours(images)
        rows = {"loss": rel(loss, their_loss), "logits": rel(our_logits, logits),
                "anchor (hand-crafted)": rel(ours.anchor, theirs.ori_embedding)}
        rows.update({f"grad {name}": rel(ours.get_parameter(name).grad, their_params[their].grad)
                     for name, their in ROLES.items()})
        ok &= report(f"TCP {dataset} {mode}", rows)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of the authors' TCP repository")
    args = parser.parse_args()
    theirs_module = load_authors_module(args.checkout, "trainers/tcp.py", "authors_tcp.tcp", package_dir="trainers")
    ok = True
    for dataset in ("OxfordPets", "FGVCAircraft", "UCF101"):  # own prompt tail; own anchor; context over words
        ok &= compare(theirs_module, dataset)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
