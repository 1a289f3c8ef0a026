"""MaPLe against the authors' code: the same random CLIP, batch and prompts; loss, logits, gradients.

    git clone https://github.com/muzairkhattak/multimodal-prompt-learning /tmp/maple
    python bench/compare/maple.py /tmp/maple

Their model is built from their `trainers/maple.py` and their fork of CLIP (both fp32), ours from
`clipprompt.models.MaPLe`; their initial prompts and coupling layers are copied into ours by role.
Their code casts the visual prompts and the deeper text prompts to fp16 at every precision
(`.half()`); `HALF_PROMPTS True` does the same and must agree to ~1e-5. Our default (fp32 prompts
in fp32) is shown too: it differs by the fp16 rounding, which is the point of the switch.
Not run in CI (needs their checkout).

    python bench/compare/maple.py /tmp/maple --speed [--batch 4 --runs 5]

instead times one training step and one evaluation batch side by side on a random ViT-B/16 in fp32
(the authors' base-to-new config; our default fp32 prompts; 50 classes) and estimates one base-to-new
run (see `common.time_method`).
"""

from __future__ import annotations

import argparse

import torch
from yacs.config import CfgNode as CN

from common import (WIDE_SHAPE, Speed, add_speed_arguments, eval_step, import_authors_file, loss_and_logits, rel, report,
                    schedule, speed_batch, speed_classes, their_clip, time_method, train_step, verdict)

from clipprompt.models import MaPLe
from clipprompt.models.maple import MaPLeOptions
from clipprompt.backbones.random_clip import build_random_clip

CLASSNAMES = ["dog", "fire_truck", "sea lion", "snowy owl", "hot air balloon"]
N_CTX, DEPTH = 2, 3

def roles(depth: int = DEPTH) -> dict[str, str]:
    """Their parameter name -> ours."""
    return {
        "prompt_learner.ctx": "ctx",
        "prompt_learner.proj.weight": "proj.weight",
        "prompt_learner.proj.bias": "proj.bias",
        **{f"prompt_learner.compound_prompts_text.{k}": f"deep_text.{k}" for k in range(depth - 1)},
        **{
            f"prompt_learner.compound_prompt_projections.{k}.{p}": f"deep_proj.{k}.{p}"
            for k in range(depth - 1)
            for p in ("weight", "bias")
        },
    }


ROLES = roles()


def build_theirs(checkout: str, state: dict, n_ctx: int = N_CTX, depth: int = DEPTH, classnames=CLASSNAMES,
                 resolution: int = 32):
    maple = import_authors_file(checkout, "trainers/maple.py", "authors_maple")
    cfg = CN()
    cfg.TRAINER = CN({"MAPLE": CN({"N_CTX": n_ctx, "CTX_INIT": "a photo of a", "PROMPT_DEPTH": depth})})
    cfg.INPUT = CN({"SIZE": (resolution, resolution)})
    design = {"trainer": "MaPLe", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0,
              "language_ctx": 0, "maple_length": n_ctx}
    clip = their_clip(maple.clip, state, design)
    model = maple.CustomCLIP(cfg, classnames, clip).float()  # their proj is built in fp16
    for name, param in model.named_parameters():  # what their trainer leaves trainable
        param.requires_grad_("prompt_learner" in name)
    learnable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert learnable == set(roles(depth)), sorted(learnable ^ set(roles(depth)))
    return model


def speed(checkout, batch: int = 4, runs: int = 5) -> Speed:
    """Their MaPLe and ours at the authors' base-to-new config (2 context vectors, depth 9) on one
    random ViT-B/16, timed side by side (our default fp32 prompts)."""
    n_ctx, depth = 2, 9
    classnames = speed_classes()
    clip = build_random_clip("ViT-B/16")
    torch.manual_seed(1)
    theirs = build_theirs(str(checkout), clip.state_dict(), n_ctx, depth, classnames, 224)
    ours = MaPLe(clip, classnames, MaPLeOptions(n_ctx=n_ctx, prompt_depth=depth))
    ours.load_trainable_state_dict({mine: theirs.get_parameter(their).detach() for their, mine in roles(depth).items()})
    images, labels = speed_batch(batch, len(classnames))
    return time_method("MaPLe", schedule("MaPLe", "vit_b16_c2_ep5_batch4_2ctx"), ours,
                       train_step(theirs, lambda: theirs(images, labels)), eval_step(theirs, lambda: theirs(images)),
                       images, labels, runs)


def run_theirs(model, images, labels):
    model.train()
    loss = model(images, labels)
    loss.backward()
    model.eval()
    with torch.no_grad():
        logits = model(images)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), logits, grads


def run_ours(model, images, labels):
    loss, logits = loss_and_logits(model, images, labels)
    return loss, logits, {name: p.grad for name, p in model.named_parameters() if p.requires_grad}


def compare(theirs_out, ours_out) -> dict[str, float]:
    loss_t, logits_t, grads_t = theirs_out
    loss_o, logits_o, grads_o = ours_out
    rows = {"loss": rel(loss_o, loss_t), "logits": rel(logits_o, logits_t)}
    rows.update({f"grad {ours} ({theirs})": rel(grads_o[ours], grads_t[theirs]) for theirs, ours in ROLES.items()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="a checkout of github.com/muzairkhattak/multimodal-prompt-learning")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        speed(args.checkout, args.batch, args.runs)
        return

    state = build_random_clip(WIDE_SHAPE).state_dict()
    torch.manual_seed(1)
    theirs = build_theirs(args.checkout, state)
    torch.manual_seed(2)
    images = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([0, 3, 1, 4])
    theirs_out = run_theirs(theirs, images, labels)
    start = {name: p.detach() for name, p in theirs.named_parameters() if p.requires_grad}

    def ours_model(half: bool, fast: bool) -> MaPLe:
        model = MaPLe(build_random_clip(WIDE_SHAPE), CLASSNAMES,
                      MaPLeOptions(n_ctx=N_CTX, prompt_depth=DEPTH, half_prompts=half))
        model.load_trainable_state_dict({mine: start[their] for their, mine in ROLES.items()})
        return model.configure(eos_cut=fast, fused=fast)

    faithful = 0.0  # the largest difference with HALF_PROMPTS True: what must match
    for title, half, fast in [
        ("ours, HALF_PROMPTS True (the authors' fp16 casts), fast paths (EOS cut, SDPA)", True, True),
        ("ours, HALF_PROMPTS True, slow paths (77 tokens, CLIP's block forward)", True, False),
        ("ours, default HALF_PROMPTS False (fp32 prompts): differs by fp16 rounding", False, True),
    ]:
        worst = report(title, compare(theirs_out, run_ours(ours_model(half, fast), images, labels)))
        if half:
            faithful = max(faithful, worst)

    # Our fast paths against our slow ones at fp32 prompts (no fp16 rounding to amplify differences).
    (loss_f, logits_f, grads_f), (loss_s, logits_s, grads_s) = (
        run_ours(ours_model(half=False, fast=fast), images, labels) for fast in (True, False))
    report("ours, HALF_PROMPTS False: fast paths against slow paths",
           {"loss": rel(loss_f, loss_s), "logits": rel(logits_f, logits_s),
            **{f"grad {name}": rel(grads_f[name], grads_s[name]) for name in grads_s}})
    raise SystemExit(verdict(faithful, args.tolerance, " with HALF_PROMPTS True"))


if __name__ == "__main__":
    main()
