"""DePT on CoOp, CoCoOp, KgCoOp and MaPLe against the authors' code (github.com/Koorye/DePT): each loss term,
the loss, the logits (base classes: the fused ones; new classes: the base's) and every gradient.

    git clone https://github.com/Koorye/DePT /tmp/dept
    python bench/compare/dept.py /tmp/dept

Their models are `CustomCLIP` of their `trainers/elp_coop.py`, `elp_cocoop.py`, `elp_kgcoop.py` and `elp_maple.py`
(the `ExtrasLinearProbe*` trainers) on their fork of CLIP with our random weights in fp32, built
for the base classes (DATASET.SUBSAMPLE_CLASSES base) and for new ones; ours are
`clipprompt.models.DePT` around our CoOp, CoCoOp, KgCoOp and MaPLe. Their initial prompts, CwT (their
FiLM) and head are copied into ours, then every learned parameter is moved off its start so
that no gradient is zero by symmetry. Their loss terms come from their own methods
(`_forward_feats`, `_forward_logits_similarity`, `_forward_logits_linear_probe`). MaPLe runs with
HALF_PROMPTS True (their MaPLe casts its prompts to fp16; see bench/compare/maple.py). Their code
imports plotnine (unused by the model); a stub stands in when it is not installed.
Not run in CI (needs their checkout).

    python bench/compare/dept.py /tmp/dept --speed [--bases CoOp] [--batch 4 --runs 5]

instead times one training step and one evaluation batch of each base side by side on a random
ViT-B/16 in fp32 (50 classes) and estimates one base-to-new run (see `common.time_method`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from common import (PATHS, WIDE_SHAPE, Speed, add_speed_arguments, dassl_like_cfg, eval_step, import_authors_file, rel,
                    report, schedule, speed_batch, speed_classes, their_clip, time_method, train_step, verdict)

from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.data.catalog import get_spec
from clipprompt.models import CoCoOp, CoOp, DePT, KgCoOp, MaPLe
from clipprompt.models.base import normalize
from clipprompt.models.cocoop import CoCoOpOptions
from clipprompt.models.coop import CoOpOptions
from clipprompt.models.kgcoop import KgCoOpOptions, authors_template
from clipprompt.models.maple import MaPLeOptions

BASE = ["dog", "fire_truck", "sea lion", "snowy owl", "hot air balloon"]
NEW = ["red fox", "tram", "maple leaf"]
DATASET = "OxfordPets"
N_CTX_MAPLE, DEPTH = 2, 3
HEAD_ROLES = {"film_lp_text.scale": "cwt_text.scale", "film_lp_text.bias": "cwt_text.bias",
              "film_lp_img.scale": "cwt_image.scale", "film_lp_img.bias": "cwt_image.bias",
              "linear_probe_proj.weight": "head.weight", "linear_probe_proj.bias": "head.bias"}
MAPLE_ROLES = {
    "prompt_learner.ctx": "base.ctx", "prompt_learner.proj.weight": "base.proj.weight",
    "prompt_learner.proj.bias": "base.proj.bias",
    **{f"prompt_learner.compound_prompts_text.{k}": f"base.deep_text.{k}" for k in range(DEPTH - 1)},
    **{f"prompt_learner.compound_prompt_projections.{k}.{p}": f"base.deep_proj.{k}.{p}"
       for k in range(DEPTH - 1) for p in ("weight", "bias")},
}
COCOOP_ROLES = {"prompt_learner.ctx": "base.ctx", **{
    f"prompt_learner.meta_net.linear{k}.{p}": f"base.meta_net.{2 * (k - 1)}.{p}" for k in (1, 2) for p in ("weight", "bias")}}
BASES = {  # base -> (their file, their base module, roles, CLIP shape)
    "CoOp": ("trainers/elp_coop.py", "coop", {"prompt_learner.ctx": "base.ctx"}, "tiny"),
    "CoCoOp": ("trainers/elp_cocoop.py", "cocoop", COCOOP_ROLES, "tiny"),
    "KgCoOp": ("trainers/elp_kgcoop.py", "kgcoop", {"prompt_learner.ctx": "base.ctx"}, "tiny"),
    "MaPLe": ("trainers/elp_maple.py", "maple", MAPLE_ROLES, "wide"),
}


@contextlib.contextmanager
def lenient_imports():
    """Their trainers register Dassl names that another import registers again; plotnine is unused."""
    from dassl.engine import TRAINER_REGISTRY

    register = TRAINER_REGISTRY._do_register
    TRAINER_REGISTRY._do_register = lambda name, obj, force=False: register(name, obj, force=True)
    stub = "plotnine" not in sys.modules and not _importable("plotnine")
    if stub:
        sys.modules["plotnine"] = types.ModuleType("plotnine")
    try:
        yield
    finally:
        TRAINER_REGISTRY._do_register = register
        if stub:
            del sys.modules["plotnine"]


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def their_cfg(base: str, subsample: str, resolution: int):
    nodes = {
        "LINEAR_PROBE": {"TYPE": "linear", "WEIGHT": 0.7, "TEST_TIME_FUSION": True},
        "FILM": {"LINEAR_PROBE": True},
        "COOP": {"N_CTX": 4 if base == "KgCoOp" else 16, "CTX_INIT": "a photo of a" if base == "KgCoOp" else "",
                 "CSC": False, "CLASS_TOKEN_POSITION": "end", "W": 2.0, "PREC": "fp32"},
        "COCOOP": {"N_CTX": 4, "CTX_INIT": "a photo of a", "PREC": "fp32"},
        "MAPLE": {"N_CTX": N_CTX_MAPLE, "CTX_INIT": "a photo of a", "PROMPT_DEPTH": DEPTH, "PREC": "fp32"},
    }
    cfg = dassl_like_cfg(nodes, DATASET, resolution)
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    return cfg


def build_theirs(module, base_module, base: str, state, classnames, subsample: str, resolution: int):
    design = {"trainer": "MaPLe", "vision_depth": 0, "language_depth": 0, "vision_ctx": 0,
              "language_ctx": 0, "maple_length": N_CTX_MAPLE} if base == "MaPLe" else None
    base_module.load_clip_to_cpu = lambda cfg: their_clip(base_module.clip, state, design)
    from common import cpu_only

    with cpu_only():
        model = module.CustomCLIP(their_cfg(base, subsample, resolution), classnames,
                                  their_clip(base_module.clip, state, design)).float()
    for name, param in model.named_parameters():  # their NAMES_TO_UPDATE
        param.requires_grad_(any(key in name for key in ("prompt_learner", "linear_probe", "film")))
    return model


def build_ours(base: str, shape, classnames, fast: bool) -> DePT:
    clip = build_random_clip(shape)
    if base == "CoOp":
        model = CoOp(clip, classnames, CoOpOptions(n_ctx=16))
    elif base == "CoCoOp":
        model = CoCoOp(clip, classnames, CoCoOpOptions(n_ctx=4, ctx_init="a photo of a"))
    elif base == "KgCoOp":
        spec = get_spec(DATASET)
        model = KgCoOp(clip, classnames, KgCoOpOptions(w=2.0), template=authors_template(spec.name, spec.template))
    else:
        model = MaPLe(clip, classnames, MaPLeOptions(n_ctx=N_CTX_MAPLE, prompt_depth=DEPTH, half_prompts=True))
    return DePT(model).configure(eos_cut=fast, fused=fast)


def their_terms(model, images, labels) -> dict[str, torch.Tensor]:
    """Their loss and each of its terms, from their own methods, and their gradients."""
    model.zero_grad()
    model.train()
    text, image = model._forward_feats(images)
    logits = model._forward_logits_similarity(text, image)
    head, head_labels = model._forward_logits_linear_probe(text, image, labels)
    terms = {"ce": F.cross_entropy(logits, labels), "ce_head": F.cross_entropy(head, head_labels)}
    if hasattr(model, "kg_weight"):
        old = model.ori_embedding / model.ori_embedding.norm(dim=-1, keepdim=True)
        terms["kg"] = 1.0 - torch.mean(torch.nn.CosineSimilarity(dim=1, eps=1e-07)(text, old))
    loss = model(images, labels)  # their training forward: the loss alone
    loss.backward()
    terms["loss"] = loss
    return {k: v.detach() for k, v in terms.items()}


def our_terms(model, images, labels) -> dict[str, torch.Tensor]:
    model.zero_grad()
    model.train()
    loss, summary = model.loss(images, labels)
    loss.backward()
    image = model.encode_images(images)
    text = model.base.encode_text(image)
    logits = model.logits(normalize(image), normalize(text))
    terms = {"ce": F.cross_entropy(logits, labels),
             "ce_head": F.cross_entropy(model.head_logits(image, text, labels), torch.cat([labels, labels]))}
    if "kg" in summary:
        terms["kg"] = model.base.knowledge_distance(text)
    terms["loss"] = loss
    return {k: v.detach() for k, v in terms.items()}


def compare_base(checkout: str, base: str) -> tuple[float, float]:
    """The largest relative difference on our exact path and on our fast path."""
    path, base_name, base_roles, shape_name = BASES[base]
    shape = WIDE_SHAPE if shape_name == "wide" else "tiny"
    state = build_random_clip(shape).state_dict()
    resolution = build_random_clip(shape).visual.input_resolution
    with lenient_imports():
        module = import_authors_file(checkout, path, f"authors_dept_{base.lower()}")
    base_module = sys.modules[f"authors_dept_{base.lower()}_pkg.{base_name}"]
    roles = {**base_roles, **HEAD_ROLES}
    torch.manual_seed(1)
    theirs = build_theirs(module, base_module, base, state, BASE, "base", resolution)
    learnable = {n for n, p in theirs.named_parameters() if p.requires_grad}
    unused = learnable - set(roles)  # their KgCoOp's bias_vectors and meta_net: in no forward, no gradient
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if name in roles:
                p.add_(0.05 * torch.randn_like(p))
    start = {n: p.detach().clone() for n, p in theirs.named_parameters() if n in roles}
    torch.manual_seed(2)
    images = torch.randn(4, 3, resolution, resolution)
    labels = torch.tensor([0, 3, 1, 4])
    t_terms = their_terms(theirs, images, labels)
    t_grads = {n: p.grad.clone() for n, p in theirs.named_parameters() if n in roles}
    assert all(theirs.get_parameter(n).grad is None for n in unused), unused
    theirs.eval()
    new_theirs = build_theirs(module, base_module, base, state, NEW, "new", resolution)
    with torch.no_grad():
        t_logits = theirs(images)
        for name, p in new_theirs.named_parameters():
            if name in start:
                p.copy_(start[name])
        new_theirs.eval()
        t_new = new_theirs(images)

    worst = {}
    for mode, settings in PATHS.items():
        ours = build_ours(base, shape, BASE, settings["fused"])
        ours.load_trainable_state_dict({mine: start[theirs_name] for theirs_name, mine in roles.items()})
        o_terms = our_terms(ours, images, labels)
        o_grads = {mine: ours.get_parameter(mine).grad for mine in roles.values()}
        ours.eval()
        new = build_ours(base, shape, NEW, settings["fused"])  # base-trained weights on new classes
        new.load_trainable_state_dict(new.fit_to_trained_classes(ours.trainable_state_dict(), BASE))
        with torch.no_grad():
            with ours.cached_text_features():
                o_logits = ours(images)
            with new.cached_text_features():
                o_new = new(images)
        rows = {f"loss term {k}": rel(o_terms[k], t_terms[k]) for k in t_terms}
        rows["logits, base classes (fused)"] = rel(o_logits, t_logits)
        rows["logits, new classes (base only)"] = rel(o_new, t_new)
        rows.update({f"grad {mine} ({theirs_name})": rel(o_grads[mine], t_grads[theirs_name])
                     for theirs_name, mine in roles.items()})
        worst[settings["fused"]] = report(f"{base} + DePT, {mode}", rows)
    return worst[False], worst[True]


# Our copies of their base-to-new configs, per base.
SPEED_CONFIGS = {"CoOp": "vit_b16_ep10_bs4_lr35", "CoCoOp": "vit_b16_c4_ep10_batch1_ctxv1",
                 "KgCoOp": "vit_b16_ep10_ctxv1_bs4_lr35", "MaPLe": "vit_b16_c2_ep10_batch4_2ctx"}


def speed(checkout, batch: int = 4, runs: int = 5, base: str = "CoOp") -> Speed:
    """One training step and one evaluation batch of theirs and ours (fast path, text features cached
    as our trainer evaluates) on one random ViT-B/16, same weights and batch, fp32. MaPLe keeps this
    script's prompt depth (3) and HALF_PROMPTS True."""
    path, base_name, base_roles, _ = BASES[base]
    classnames = speed_classes()
    clip = build_random_clip("ViT-B/16")
    with lenient_imports():
        module = import_authors_file(str(checkout), path, f"authors_dept_{base.lower()}_t")
    base_module = sys.modules[f"authors_dept_{base.lower()}_t_pkg.{base_name}"]
    roles = {**base_roles, **HEAD_ROLES}
    torch.manual_seed(1)
    theirs = build_theirs(module, base_module, base, clip.state_dict(), classnames, "base", 224)
    ours = build_ours(base, "ViT-B/16", classnames, fast=True)
    ours.load_trainable_state_dict({mine: theirs.get_parameter(t).detach() for t, mine in roles.items()})
    images, labels = speed_batch(batch, len(classnames))
    return time_method(f"{base}_DePT", schedule(f"{base}_DePT", SPEED_CONFIGS[base]), ours,
                       train_step(theirs, lambda: theirs(images, labels)), eval_step(theirs, lambda: theirs(images)),
                       images, labels, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of github.com/Koorye/DePT")
    parser.add_argument("--bases", nargs="+", default=list(BASES), choices=list(BASES))
    parser.add_argument("--tolerance", type=float, default=1e-6, help="on the exact path")
    parser.add_argument("--fast-tolerance", type=float, default=1e-4,
                        help="on the fast path (MaPLe's fp16 prompts amplify the fast path's rounding)")
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        for base in args.bases:
            speed(args.checkout, args.batch, args.runs, base)
        return 0
    exact, fast = zip(*(compare_base(str(args.checkout), base) for base in args.bases))
    return max(verdict(max(exact), args.tolerance, " on the exact path"),
               verdict(max(fast), args.fast_tolerance, " on the fast path"))


if __name__ == "__main__":
    sys.exit(main())
