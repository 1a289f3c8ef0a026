"""CoPrompt against the authors' code (ShuvenduRoy/CoPrompt): the same random CLIP, batch, both image
views, descriptions, prompts and adapters; the loss, each loss term, the logits and every gradient.

    git clone https://github.com/ShuvenduRoy/CoPrompt /tmp/coprompt-code
    python bench/compare/coprompt.py /tmp/coprompt-code

Their model is `trainers/coprompt.py`'s `CustomCLIP` on their fork of CLIP (MaPLe's), in fp32
(PREC fp32), with the frozen CLIP and the description features built as their trainer builds them
(`gpt_clip_classifier`, run in a temporary folder: it writes a cache file); ours is
`clipprompt.models.CoPrompt` with their initial prompts, coupling layers and adapters copied in by
role. Both views of the images are given explicitly (the same tensors on both sides) and python's
`random` is seeded the same before each side's step, so both draw the same description. Their CLIP
fork casts the visual and deeper text prompts to fp16 at every precision: HALF_PROMPTS True does the
same and is what must match; our default (fp32 prompts) is shown beside it. Their adapters and
prompt widths are hard-coded to ViT-B/16's (512 text and embedding, 768 image), so the CLIP is
`SMALL_B16_SHAPE` (4 blocks of those widths, 32-px images). The verdict is the exact path's
(77-token prompts, CLIP's block forward); the fast path is printed beside it. Not run in CI.

    python bench/compare/coprompt.py /tmp/coprompt-code --speed [--batch 4 --classes 10 --runs 5]

times one training step (both views, loss, backward, SGD step) and one evaluation batch side by side
on a random ViT-B/16 in fp32 (their base-to-new setting: depth 9, 2 prompt tokens), interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import tempfile
import types

import torch
import torch.nn.functional as F

from common import (PATHS, SMALL_B16_SHAPE, cpu_only, dassl_like_cfg, import_authors_file, rel, report,
                    side_by_side, their_clip, verdict)

from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.models import CoPrompt
from clipprompt.models.coprompt import CoPromptOptions

CLASSNAMES = ["dog", "fire_truck", "sea lion", "snowy owl", "hot air balloon"]
DETAILS = ("with four legs", "in the rain at night", "seen from far away")
N_CTX, DEPTH, WEIGHT = 2, 3, 2.0
LEARNED = ("prompt_learner", "adapter")  # what their trainer leaves trainable


def descriptions_of(classnames):
    return {name.replace("_", " "): [f"A photo of a {name.replace('_', ' ')} {d}." for d in DETAILS] for name in classnames}


def roles(depth: int) -> dict[str, str]:
    """Their parameter name -> ours."""
    return {
        "prompt_learner.ctx": "ctx",
        "prompt_learner.proj.weight": "proj.weight",
        "prompt_learner.proj.bias": "proj.bias",
        **{f"prompt_learner.compound_prompts_text.{k}": f"deep_text.{k}" for k in range(depth - 1)},
        **{f"prompt_learner.compound_prompt_projections.{k}.{p}": f"deep_proj.{k}.{p}"
           for k in range(depth - 1) for p in ("weight", "bias")},
        **{f"adapter_{side}.fc.{i}.weight": f"{side}_adapter.{i}.weight" for side in ("image", "text") for i in (0, 2)},
    }


@contextlib.contextmanager
def in_temporary_folder():
    """Their `gpt_clip_classifier` saves `cache/<dataset>_clip_weights_random.pt` in the working folder."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(cwd)


def build_theirs(module, state: dict, classnames, depth: int, n_ctx: int, resolution: int):
    cfg = dassl_like_cfg({"CoPrompt": {"N_CTX": n_ctx, "CTX_INIT": "a photo of a", "PREC": "fp32",
                                       "PROMPT_DEPTH": depth}}, "Caltech101", resolution)
    cfg.TRAINER.W, cfg.TRAINER.DISTILL = WEIGHT, "cosine"
    design = {"trainer": "CoPrompt", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0,
              "maple_length": n_ctx}
    plain = {"trainer": "CoOp", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0, "language_ctx": 0}
    with cpu_only(), in_temporary_folder():
        clip_model, frozen = their_clip(module.clip, state, design), their_clip(module.clip, state, plain)
        weights = module.gpt_clip_classifier(classnames, descriptions_of(classnames), frozen, "Caltech101")
        model = module.CustomCLIP(cfg, classnames, clip_model, frozen, weights)
    for name, param in model.named_parameters():  # as their build_model
        param.requires_grad_(any(part in name for part in LEARNED))
    return model


class Recorder:
    """Their loss terms, as their forward computes them: the cross-entropy and the two cosine scores."""

    def __init__(self, module):
        self.module, self.terms = module, {}

    @contextlib.contextmanager
    def recording(self):
        module, terms = self.module, self.terms
        terms.clear()
        scores = []
        cosine_forward = torch.nn.CosineSimilarity.forward

        def cross_entropy(*args, **kwargs):
            terms["ce"] = F.cross_entropy(*args, **kwargs)
            return terms["ce"]

        def cosine(self_, a, b):
            scores.append(cosine_forward(self_, a, b))
            return scores[-1]

        functional = module.F
        module.F = types.SimpleNamespace(**{**vars(F), "cross_entropy": cross_entropy})
        torch.nn.CosineSimilarity.forward = cosine
        try:
            yield
        finally:
            module.F = functional
            torch.nn.CosineSimilarity.forward = cosine_forward
        terms["text_consistency"] = 1.0 - torch.mean(scores[0])
        terms["image_consistency"] = 1.0 - torch.mean(scores[1])


def run_theirs(module, model, views, labels, seed: int):
    recorder = Recorder(module)
    model.train()
    model.zero_grad()
    random.seed(seed)
    with cpu_only(), recorder.recording():
        loss = model(views[0], views[1], labels)
    loss.backward()
    model.eval()
    with torch.no_grad(), cpu_only():
        logits = model(views[0])
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), {k: v.detach() for k, v in recorder.terms.items()}, logits, grads


def run_ours(model, views, labels, seed: int):
    model.zero_grad()
    random.seed(seed)
    loss, summary = model.loss(views, labels)
    loss.backward()
    with torch.no_grad():
        logits = model(views[0])
    terms = {k: torch.tensor(summary[k]) for k in ("ce", "text_consistency", "image_consistency")}
    return loss.detach(), terms, logits, {name: p.grad for name, p in model.named_parameters() if p.requires_grad}


def compare(theirs_out, ours_out, names: dict[str, str]) -> dict[str, float]:
    (loss_t, terms_t, logits_t, grads_t), (loss_o, terms_o, logits_o, grads_o) = theirs_out, ours_out
    assert set(grads_t) == set(names), sorted(set(grads_t) ^ set(names))
    rows = {"loss": rel(loss_o, loss_t), **{f"term {k}": rel(terms_o[k], terms_t[k]) for k in terms_t},
            "logits": rel(logits_o, logits_t)}
    rows.update({f"grad {ours} ({theirs})": rel(grads_o[ours], grads_t[theirs]) for theirs, ours in names.items()})
    return rows


def ours_for(theirs, shape, classnames, depth: int, n_ctx: int, half: bool) -> CoPrompt:
    options = CoPromptOptions(n_ctx=n_ctx, prompt_depth=depth, half_prompts=half, consistency_weight=WEIGHT, prec="fp32")
    descriptions = descriptions_of(classnames)
    model = CoPrompt(build_random_clip(shape), classnames, options,
                     [descriptions[name.replace("_", " ")] for name in classnames])
    start = {name: p.detach() for name, p in theirs.named_parameters() if p.requires_grad}
    model.load_trainable_state_dict({mine: start[their] for their, mine in roles(depth).items()})
    return model


def speed(module, batch: int, classes: int, runs: int) -> None:
    """Median ms of a training step and an evaluation batch, theirs and ours, interleaved."""
    names = [f"class number {i}" for i in range(classes)]
    state = build_random_clip("ViT-B/16").state_dict()
    theirs = build_theirs(module, state, names, depth=9, n_ctx=2, resolution=224)
    ours = ours_for(theirs, "ViT-B/16", names, depth=9, n_ctx=2, half=True)
    torch.manual_seed(0)
    views = (torch.randn(batch, 3, 224, 224), torch.randn(batch, 3, 224, 224))
    labels = torch.randint(0, classes, (batch,))
    optims = {who: torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.0, momentum=0.9)
              for who, m in (("theirs", theirs), ("ours", ours))}
    ours.description_targets()  # both compute the description features once, before training

    def train_theirs():
        theirs.train()
        loss = theirs(views[0], views[1], labels)
        optims["theirs"].zero_grad()
        loss.backward()
        optims["theirs"].step()

    def train_ours():
        ours.train()
        loss, _ = ours.loss(views, labels)
        optims["ours"].zero_grad()
        loss.backward()
        optims["ours"].step()

    def eval_theirs():
        theirs.eval()
        with torch.no_grad():
            theirs(views[0])  # their text features: recomputed every batch

    ours.eval()
    with torch.no_grad(), ours.cached_text_features():  # cached once, as a test set does
        cached = ours._text_cache

    def eval_ours():
        ours.eval()
        ours._text_cache = cached
        try:
            with torch.no_grad():
                ours(views[0])
        finally:
            ours._text_cache = None

    print(f"\nCoPrompt speed, random ViT-B/16, fp32, CPU, batch {batch}, {classes} classes, depth 9, 2 prompt tokens "
          "(HALF_PROMPTS True, as theirs)")
    with cpu_only():
        side_by_side({"train step": (train_theirs, train_ours), "eval batch": (eval_theirs, eval_ours)}, runs=runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="a checkout of github.com/ShuvenduRoy/CoPrompt")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--speed", action="store_true", help="time a training step and an evaluation batch instead")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    module = import_authors_file(args.checkout, "trainers/coprompt.py", "authors_coprompt")
    if args.speed:
        speed(module, args.batch, args.classes, args.runs)
        return
    shape = SMALL_B16_SHAPE
    state = build_random_clip(shape).state_dict()
    torch.manual_seed(1)
    theirs = build_theirs(module, state, CLASSNAMES, DEPTH, N_CTX, shape.image_resolution)
    torch.manual_seed(2)
    size = shape.image_resolution
    views = (torch.randn(4, 3, size, size), torch.randn(4, 3, size, size))
    labels = torch.tensor([0, 3, 1, 4])
    theirs_out = run_theirs(module, theirs, views, labels, seed=5)
    names = roles(DEPTH)

    faithful = 0.0
    for half in (True, False):
        for title, paths in PATHS.items():
            ours = ours_for(theirs, shape, CLASSNAMES, DEPTH, N_CTX, half).configure(**paths)
            label = "HALF_PROMPTS True (the authors' fp16 casts)" if half else "default HALF_PROMPTS False (fp32 prompts)"
            worst = report(f"CoPrompt, ours with {label}, {title} path, against theirs",
                           compare(theirs_out, run_ours(ours, views, labels, seed=5), names))
            if half and not paths["fused"]:
                faithful = max(faithful, worst)
    raise SystemExit(verdict(faithful, args.tolerance, " with HALF_PROMPTS True on the exact path"))


if __name__ == "__main__":
    main()
