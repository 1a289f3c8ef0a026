"""HiCroPL against the authors' code (zzeoZheng/HiCroPL): the same random CLIP, batch, prompts, mappers
and class descriptions; loss, each loss term, logits and every gradient.

    git clone https://github.com/zzeoZheng/HiCroPL /tmp/hicropl-code
    python bench/compare/hicropl.py /tmp/hicropl-code

Their model is `trainers/hicropl.py`'s `CustomCLIP` on their fork of CLIP (fp32, PREC fp32), with our
random weights; the frozen CLIP their code loads twice (for the description features, and as the
image "teacher", which their code leaves in fp16 so that only PREC fp16 runs: here it gets the same
fp32 weights) is the same CLIP. Their code reads `gpt_file/<dataset>_prompt.json` from the working
directory and writes `cache/<dataset>_clip_weights_random.pt` there (its output, never read back),
so it runs in a temporary folder holding two sentences per class written by this script.

Ours is `clipprompt.models.HiCroPL` with their initial parameters copied in by role. Their forward
overwrites the learned prompts in place and aliases tensors (see docs/hicropl.md), which
`IN_PLACE_MAPPING True` and `HALF_PROMPTS True` reproduce: that setting must match (a training
forward and backward, then an evaluation forward, as their trainer runs them; tolerance 1e-6 on the
exact path). The paper's flow (our default) has no counterpart in their code; its first forward
gives the same values as theirs once their aliased prompts are made separate tensors, which is
checked too (loss and its terms). Not run in CI (needs their checkout).

    python bench/compare/hicropl.py /tmp/hicropl-code --speed [--batch 4 --classes 10 --runs 5]

times one training step and one evaluation batch side by side on a random ViT-B/16 in fp32 with
their base-to-new settings (16 tokens, J 12, k 6), interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from common import (PATHS, WIDE_SHAPE, add_speed_arguments, cpu_only, dassl_like_cfg, import_authors_file,
                    loss_terms_and_logits, rel, report, side_by_side, their_clip, verdict)

from clipprompt.backbones.random_clip import PRESETS, build_random_clip
from clipprompt.models import HiCroPL
from clipprompt.models.hicropl import HiCroPLOptions

CLASSNAMES = ["dog", "fire_truck", "sea lion", "snowy owl", "hot air balloon"]
DATASET, FILE = "DescribableTextures", "dtd"  # a name their code maps to a gpt_file name
N_CTX, DEPTH, CROSS = 2, 4, 2


def descriptions(classnames) -> dict[str, list[str]]:
    return {name: [f"a photo of a {name.replace('_', ' ')}.", f"a {name.replace('_', ' ')} seen from afar, in the wild."]
            for name in classnames}


def roles(depth: int, cross: int) -> dict[str, str]:
    """Their parameter name -> ours."""
    mapping = {"ctx": "ctx"}
    mapping.update({f"cross_prompts_text.{i}": f"deep_text.{i - 1}" for i in range(1, depth)})
    mapping.update({f"cross_prompts_visual.{i}": f"visual_prompts.{i}" for i in range(depth)})
    mapping.update({f"text_proxy_token.{i}": f"text_proxy_tokens.{i}" for i in range(cross)})
    mapping.update({f"visual_proxy_token.{i}": f"visual_proxy_tokens.{i}" for i in range(depth - cross)})
    return {"prompt_learner." + theirs: ours for theirs, ours in mapping.items()}


def module_roles(name: str) -> str | None:
    """Ours for their mapper and proxy parameters (the same layout under other names)."""
    for theirs, ours in (("text2visual_net.", "text_to_visual."), ("visual2text_net.", "visual_to_text."),
                         ("attn_pooling_text_nets.", "text_proxies."), ("attn_pooling_visual_nets.", "visual_proxies.")):
        if name.startswith("prompt_learner." + theirs):
            rest = name[len("prompt_learner." + theirs):]
            return ours + rest.replace("ffn.c_fc.", "ffn.0.").replace("ffn.c_proj.", "ffn.2.")
    return None


@contextlib.contextmanager
def in_folder_with_descriptions(classnames):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "gpt_file").mkdir()
        text = {name.replace("_", " "): sentences for name, sentences in descriptions(classnames).items()}
        (Path(folder) / "gpt_file" / f"{FILE}_prompt.json").write_text(json.dumps(text))
        before = os.getcwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(before)


def build_theirs(module, state, shape, classnames, n_ctx, depth, cross):
    node = {"N_CTX": n_ctx, "CTX_INIT": "a photo of a" if n_ctx <= 4 else "", "PROMPT_DEPTH": depth,
            "CROSS_LAYER": cross, "PREC": "fp32", "LAMBD": 12.0, "TEACHER_NAME": "random"}
    cfg = dassl_like_cfg({"HICROPL": node}, DATASET, shape.image_resolution)
    design = {"trainer": "HiCroPL", "vision_depth": depth, "language_depth": depth, "vision_ctx": n_ctx,
              "language_ctx": n_ctx}
    plain = {"trainer": "IVLP", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0}
    module.load_clip_to_cpu = lambda cfg, zero_shot=False: their_clip(module.clip, state, plain)
    module.load_clip_to_cpu_teacher = lambda cfg, zero_shot=False: their_clip(module.clip, state, plain)
    with cpu_only(), in_folder_with_descriptions(classnames):
        model = module.CustomCLIP(cfg, classnames, their_clip(module.clip, state, design))
    for name, param in model.named_parameters():  # their trainer's choice
        param.requires_grad_("prompt_learner" in name and "ZS_image_encoder" not in name)
    return model


@contextlib.contextmanager
def recording_terms(module, terms: dict):
    """Their forward returns the summed loss only: record its cross-entropy and the two cosine means
    as their code computes them (their `F.cross_entropy` and `torch.nn.CosineSimilarity`, wrapped)."""
    cross_entropy, cosine = F.cross_entropy, torch.nn.CosineSimilarity
    scores = []

    def recorded_cross_entropy(*args, **kwargs):
        value = cross_entropy(*args, **kwargs)
        terms["ce"] = value.detach()
        return value

    class RecordedCosine(cosine):
        def forward(self, a, b):
            score = super().forward(a, b)
            scores.append(score.detach())
            return score

    module.F = types.SimpleNamespace(cross_entropy=recorded_cross_entropy)
    torch.nn.CosineSimilarity = RecordedCosine
    try:
        yield
    finally:
        module.F, torch.nn.CosineSimilarity = F, cosine
    terms["text_distill"], terms["image_distill"] = (1.0 - score.mean() for score in scores)


def run_theirs(module, model, images, labels):
    """Their trainer: loss in train mode, backward; evaluation logits in eval mode (their forward
    overwrites the prompts again)."""
    model.train()
    model.zero_grad()
    terms = {}
    with recording_terms(module, terms):
        loss = model(images, labels)
    loss.backward()
    model.eval()
    with torch.no_grad():
        logits = model(images)
    grads = {name: (None if p.grad is None else p.grad.clone()) for name, p in model.named_parameters()
             if p.requires_grad}
    return loss.detach(), terms, logits, grads


def their_start(model, cross, depth):
    """Their initial trainable state under our names."""
    names = roles(depth, cross)
    state = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        ours = names.get(name) or module_roles(name)
        assert ours is not None, name
        state[ours] = p.detach().clone()
    return state


def build_ours(shape, classnames, start, *, in_place, half, fast, n_ctx=N_CTX, depth=DEPTH, cross=CROSS):
    options = HiCroPLOptions(n_ctx=n_ctx, ctx_init="a photo of a" if n_ctx <= 4 else "", prompt_depth=depth,
                             cross_layer=cross, lambd=12.0, half_prompts=half, in_place_mapping=in_place)
    model = HiCroPL(build_random_clip(shape), classnames, options, descriptions(classnames))
    model.load_trainable_state_dict(start)
    return model.configure(eos_cut=fast, fused=fast)


def run_ours(model, images, labels):
    loss, terms, logits = loss_terms_and_logits(model, images, labels, as_trainer=True)
    return loss, logits, {name: p.grad for name, p in model.named_parameters() if p.requires_grad}, terms


def compare(theirs_out, ours_out, cross, depth) -> dict[str, float]:
    (loss_t, terms_t, logits_t, grads_t), (loss_o, logits_o, grads_o, terms_o) = theirs_out, ours_out
    rows = {"loss": rel(loss_o, loss_t)}
    rows.update({f"term {name}": rel(torch.tensor(terms_o[name]), terms_t[name].double()) for name in terms_t})
    rows["logits"] = rel(logits_o, logits_t)
    names = roles(depth, cross)
    for name, grad in grads_t.items():
        ours = names.get(name) or module_roles(name)
        mine = grads_o[ours]
        if grad is None or mine is None:  # the mappers and proxies: no gradient on either side
            assert grad is None and mine is None, (name, grad is None, mine is None)
            continue
        rows[f"grad {ours}"] = rel(mine, grad)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="a checkout of github.com/zzeoZheng/HiCroPL")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    add_speed_arguments(parser)
    parser.add_argument("--classes", type=int, default=10, help="with --speed: classes (default 10)")
    args = parser.parse_args()
    import dassl.engine  # noqa: F401  (ours, before their checkout's copy of Dassl could be found)

    module = import_authors_file(args.checkout, "trainers/hicropl.py", "authors_hicropl")
    shape = WIDE_SHAPE
    state = build_random_clip(shape).state_dict()
    torch.manual_seed(2)
    images = torch.randn(4, 3, shape.image_resolution, shape.image_resolution)
    labels = torch.tensor([0, 3, 1, 4])

    torch.manual_seed(1)
    theirs = build_theirs(module, state, shape, CLASSNAMES, N_CTX, DEPTH, CROSS)
    start = their_start(theirs, CROSS, DEPTH)
    theirs_out = run_theirs(module, theirs, images, labels)

    worst_exact = 0.0
    for path, switches in PATHS.items():
        fast = switches["eos_cut"]
        ours = build_ours(shape, CLASSNAMES, start, in_place=True, half=True, fast=fast)
        worst = report(f"ours, IN_PLACE_MAPPING True, HALF_PROMPTS True (the authors' behaviour), {path}",
                       compare(theirs_out, run_ours(ours, images, labels), CROSS, DEPTH))
        if not fast:
            worst_exact = worst

    # The paper's flow: their first forward, with their aliased prompts made separate tensors, computes the
    # same values as ours (their in-place copy gives the prompts the mapped values before the encoders run).
    torch.manual_seed(1)
    theirs = build_theirs(module, state, shape, CLASSNAMES, N_CTX, DEPTH, CROSS)
    learner = theirs.prompt_learner
    with torch.no_grad():
        for i, p in enumerate(learner.cross_prompts_visual):
            p.data = torch.randn_like(p) * 0.02  # separate storage, fresh values
        for tokens in (learner.text_proxy_token, learner.visual_proxy_token):
            for p in tokens:
                p.data = torch.randn_like(p)
    start = their_start(theirs, CROSS, DEPTH)
    theirs.train()
    loss_t = theirs(images, labels).detach()
    rows = {}
    for path, switches in PATHS.items():
        ours = build_ours(shape, CLASSNAMES, start, in_place=False, half=True, fast=switches["eos_cut"])
        loss_o, _ = ours.loss(images, labels)
        rows[f"first-step loss, {path}"] = rel(loss_o, loss_t)
    report("ours, IN_PLACE_MAPPING False (the paper's flow), HALF_PROMPTS True: first forward against theirs "
           "with separate prompt tensors", rows)
    worst_exact = max(worst_exact, rows[f"first-step loss, {list(PATHS)[0]}"])

    # Our fast paths against our exact ones, in fp32 (no fp16 rounding to amplify differences), both flows.
    for in_place in (False, True):
        outs = [run_ours(build_ours(shape, CLASSNAMES, start, in_place=in_place, half=False, fast=fast), images, labels)
                for fast in (True, False)]
        (loss_f, logits_f, grads_f, _), (loss_s, logits_s, grads_s, _) = outs
        report(f"ours, IN_PLACE_MAPPING {in_place}, HALF_PROMPTS False: fast paths against exact paths",
               {"loss": rel(loss_f, loss_s), "logits": rel(logits_f, logits_s),
                **{f"grad {name}": rel(grads_f[name], grads_s[name]) for name in grads_s if grads_s[name] is not None}})

    if args.speed:
        speed(module, args)
    raise SystemExit(verdict(worst_exact, args.tolerance, " on the exact path"))


def speed(module, args) -> None:
    shape = PRESETS["ViT-B/16"]
    n_ctx, depth, cross = 16, 12, 6
    classnames = [f"class {i}" for i in range(args.classes)]
    state = build_random_clip(shape).state_dict()
    torch.manual_seed(1)
    theirs = build_theirs(module, state, shape, classnames, n_ctx, depth, cross)
    start = their_start(theirs, cross, depth)
    ours_paper = build_ours(shape, classnames, start, in_place=False, half=False, fast=True,
                            n_ctx=n_ctx, depth=depth, cross=cross)
    images = torch.randn(args.batch, 3, shape.image_resolution, shape.image_resolution)
    labels = torch.arange(args.batch) % args.classes
    their_optim = torch.optim.SGD([p for p in theirs.parameters() if p.requires_grad], lr=1e-6)
    our_optim = torch.optim.SGD([p for p in ours_paper.parameters() if p.requires_grad], lr=1e-6)

    def their_train():
        theirs.train()
        loss = theirs(images, labels)
        their_optim.zero_grad()
        loss.backward()
        their_optim.step()

    def our_train():
        ours_paper.train()
        loss, _ = ours_paper.loss(images, labels)
        our_optim.zero_grad()
        loss.backward()
        our_optim.step()

    def their_eval():
        theirs.eval()
        with torch.no_grad():
            theirs(images)

    def our_eval():
        ours_paper.eval()
        with torch.no_grad(), ours_paper.cached_text_features():
            ours_paper(images)

    print(f"\nrandom ViT-B/16, fp32, batch {args.batch}, {args.classes} classes, N_CTX {n_ctx}, J {depth}, k {cross}; "
          "ours: the paper's flow (default), fast paths; evaluation: ours computes the text features once per test "
          "set (here once per batch, inside the timed call), theirs per batch")
    side_by_side({"train step": (their_train, our_train), "eval batch": (their_eval, our_eval)}, runs=args.runs)


if __name__ == "__main__":
    main()
