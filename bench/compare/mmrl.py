"""MMRL (and MMRL++, `mmrlpp.py`) against the authors' code (yunncheng/MMRL): the same random CLIP,
batch and representation learner; loss, each loss term, both heads' logits and every gradient.

    git clone https://github.com/yunncheng/MMRL /tmp/mmrl-code
    python bench/compare/mmrl.py /tmp/mmrl-code
    python bench/compare/mmrlpp.py /tmp/mmrl-code

Their model is `trainers/mmrl.py`'s `CustomCLIP` on their CLIP fork (`clip/model_mmrl.py`, fp32), with
their `MMRL_Loss`, their zero-shot CLIP (the image features of `clip_model_zero_shot.visual`, the text
features of `_get_text_base_features_zero_shot`) and their trainer's fp32 step; ours is
`clipprompt.models.MMRL` on the same weights with their initial learned parameters copied by role.
Their logits use a hard-coded 100 (`LOGIT_SCALE 100` does the same; CLIP's own scale is the default).
Settings: WIDE_SHAPE (4 blocks per encoder), REP_LAYERS [3, 4], 5 tokens, REP_DIM 512, α 0.7, λ 1.0
and 0.5 with α 0.6 (MMRL++: `mmrlpp.py`'s settings). The verdict is the exact path's (77-token prompts, CLIP's block forward;
tolerance 1e-6); the fast path (EOS cut, SDPA) is printed beside it. Not run in CI.

    python bench/compare/mmrl.py /tmp/mmrl-code --speed

instead times, side by side on a random ViT-B/16 in fp32 (the authors' base-to-new settings: REP_LAYERS
6-12, batch 4, 50 classes), one training step (their trainer's fp32 step without the optimizer; ours
`loss` + `backward` on the fast path) and one evaluation batch (text features cached on both sides),
interleaved, and prints the medians, the ratios (theirs / ours) and the estimated time of one whole
base-to-new run (see `common.time_method`).
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from common import (PATHS, WIDE_SHAPE, Speed, add_speed_arguments, cpu_only, dassl_like_cfg, eval_step, import_authors_file,
                    rel, report, schedule, speed_batch, speed_classes, time_method, train_step, verdict)

from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.models import MMRL, MMRLOptions, MMRLpp, MMRLppOptions

CLASSNAMES = ["dog", "fire_truck", "sea lion", "snowy owl", "hot air balloon"]
DATASET, TEMPLATE = "Caltech101", "a photo of a {}."
N_TOKENS, LAYERS, REP_DIM = 5, [3, 4], 512


@dataclass(frozen=True)
class Variant:
    """What differs between the MMRL and the MMRL++ comparison: their files and names, our model."""

    name: str  # their trainer's config node and their fork's `model` switch
    model: type
    options: type
    settings: list[dict]  # our options per compared setting (their cfg keys follow from them)
    learned: tuple[str, ...]  # their trainer's names_to_update
    extra_design: dict = field(default_factory=dict)  # their build_model's design_details beyond MMRL's
    zero_init: tuple[str, ...] = ()  # their learned tensors that start at zero, made random for the comparison

    @property
    def trainer_file(self) -> str:
        return f"trainers/{self.name.lower()}.py"

    def design(self, model: str, layers: list[int]) -> dict:
        return {"model": model, "rep_tokens_layers": layers, "n_rep_tokens": N_TOKENS, **self.extra_design}

    def cfg(self, setting: dict, layers: list[int], resolution: int):
        keys = {"N_REP_TOKENS": N_TOKENS, "REP_DIM": REP_DIM, "REP_LAYERS": layers,
                **{key.upper(): value for key, value in setting.items()}}
        if "RES_LORA_DIM" not in keys and self.name == "MMRLpp":
            keys["RES_LORA_DIM"] = self.options().res_lora_dim
        return dassl_like_cfg({self.name: keys}, DATASET, resolution)

    def roles(self, depth: int) -> dict[str, str]:
        """Their learned parameter -> ours."""
        learner = "representation_learner"
        if self.name == "MMRL":
            names = {f"{learner}.compound_rep_tokens": "rep_tokens", "image_encoder.proj_rep": "proj_rep"}
            for k in range(depth):
                for part in ("weight", "bias"):
                    names[f"{learner}.compound_rep_tokens_r2vproj.{k}.{part}"] = f"to_image.{k}.{part}"
                    names[f"{learner}.compound_rep_tokens_r2tproj.{k}.{part}"] = f"to_text.{k}.{part}"
            return names
        names = {f"{learner}.compound_rep_tokens": "rep_tokens", "image_encoder.A": "proj_lora_a",
                 "image_encoder.B": "proj_lora_b"}
        for theirs, ours in (("r2vproj", "to_image"), ("r2tproj", "to_text")):
            names[f"{learner}.srra_{theirs}.weight"] = f"{ours}.weight"
            for k in range(depth):
                for their_part, our_part in (("A", "a"), ("B", "b"), ("bias", "bias")):
                    names[f"{learner}.srra_{theirs}.srra.{k}.{their_part}"] = f"{ours}.{our_part}.{k}"
        return names


MMRL_VARIANT = Variant("MMRL", MMRL, MMRLOptions, [dict(alpha=0.7, reg_weight=1.0), dict(alpha=0.6, reg_weight=0.5)],
                       ("representation_learner", "image_encoder.proj_rep"))
MMRLPP_VARIANT = Variant(
    "MMRLpp", MMRLpp, MMRLppOptions,
    [dict(alpha=0.7, reg_weight=1.0, beta=0.9), dict(alpha=0.6, reg_weight=0.5, beta=0.3)],
    ("representation_learner", "image_encoder.A", "image_encoder.B"),
    extra_design={"proj_lora_dim": MMRLppOptions().proj_lora_dim},
    zero_init=(".B",),
)


def their_clip(module, variant: Variant, state: dict, model: str, layers: list[int] = LAYERS,
               beta: float = 1.0) -> torch.nn.Module:
    """Their CLIP fork (`variant.name`: with representation tokens; "CLIP": their zero-shot CLIP), our fp32 weights."""
    build = getattr(module.clip, f"build_model_{variant.name}")
    design = variant.design(model, layers)
    if variant.name == "MMRLpp":
        design["beta"] = beta
    clip = build(copy.deepcopy(state), design).float()
    missing, unexpected = clip.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"visual.proj_rep", "visual.A", "visual.B"}, (missing, unexpected)
    return clip.eval()


def set_learned(model, variant: Variant) -> None:
    for name, param in model.named_parameters():  # their trainer's names_to_update
        param.requires_grad_(any(part in name for part in variant.learned))


def run_theirs(module, variant: Variant, state, setting: dict, images, labels) -> dict:
    alpha, weight = setting["alpha"], setting["reg_weight"]
    cfg = variant.cfg(setting, LAYERS, WIDE_SHAPE.image_resolution)
    torch.manual_seed(1)
    with cpu_only():
        model = module.CustomCLIP(cfg, CLASSNAMES, their_clip(module, variant, state, variant.name,
                                                              beta=setting.get("beta", 1.0)))
        zero_shot = their_clip(module, variant, state, "CLIP")
        text_clip = module._get_text_base_features_zero_shot(cfg, CLASSNAMES, zero_shot, module.TextEncoder_CLIP(zero_shot))
        text_clip = text_clip / text_clip.norm(dim=-1, keepdim=True)
        set_learned(model, variant)
        with torch.no_grad():  # low-rank factors that start at zero would leave their partners without a gradient
            for name, param in model.named_parameters():
                if param.requires_grad and name.endswith(variant.zero_init or ("-",)):
                    param.copy_(torch.randn_like(param) * 0.02)
        start = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        model.train()
        with torch.no_grad():  # their forward_backward, fp32 branch
            image_clip = zero_shot.visual(images)
            image_clip = image_clip / image_clip.norm(dim=-1, keepdim=True)
        logits, logits_rep, _, image_features, text_features = model(images)
        loss = getattr(module, f"{variant.name}_Loss")(reg_weight=weight, alpha=alpha)(
            logits, logits_rep, image_features, text_features, image_clip, text_clip, labels)
        loss.backward()
        model.eval()
        with torch.no_grad():
            class_logits, _, fused_logits, _, _ = model(images)
    terms = their_terms(logits, logits_rep, image_features, text_features, image_clip, text_clip, labels)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return {"start": start, "loss": loss.detach(), "terms": terms, "grads": grads,
            "class logits": class_logits, "fused logits": fused_logits}


def their_terms(logits, logits_rep, image, text, image_clip, text_clip, labels) -> dict:
    """Their `MMRL_Loss` term by term (the same expressions)."""
    with torch.no_grad():
        return {"ce": F.cross_entropy(logits, labels), "ce_rep": F.cross_entropy(logits_rep, labels),
                "reg_image": 1 - torch.mean(F.cosine_similarity(image, image_clip, dim=1)),
                "reg_text": 1 - torch.mean(F.cosine_similarity(text, text_clip, dim=1))}


def run_ours(variant: Variant, state, start: dict, setting: dict, path: dict, images, labels) -> dict:
    clip = build_random_clip(WIDE_SHAPE)
    clip.load_state_dict(state)
    options = variant.options(n_rep_tokens=N_TOKENS, rep_layers=LAYERS, rep_dim=REP_DIM, logit_scale=100.0, **setting)
    model = variant.model(clip, CLASSNAMES, options, template=TEMPLATE).configure(**path)
    model.load_trainable_state_dict({ours: start[theirs] for theirs, ours in variant.roles(len(LAYERS)).items()})
    loss, summary = model.loss(images, labels)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad(), model.cached_text_features():
        model.options.eval_head = "class"
        class_logits = model(images)
        model.options.eval_head = "fusion"
        fused_logits = model(images)
    terms = {name: torch.tensor(summary[name]) for name in ("ce", "ce_rep", "reg_image", "reg_text")}
    return {"loss": loss.detach(), "terms": terms, "grads": grads, "class logits": class_logits,
            "fused logits": fused_logits}


def compare(variant: Variant, theirs: dict, ours: dict) -> dict[str, float]:
    rows = {"loss": rel(ours["loss"], theirs["loss"])}
    # our summary holds Python floats (fp64 of the fp32 values): the terms compare at fp32 bits
    rows.update({f"term {name}": rel(ours["terms"][name].float(), theirs["terms"][name]) for name in theirs["terms"]})
    rows.update({name: rel(ours[name], theirs[name]) for name in ("class logits", "fused logits")})
    rows.update({f"grad {mine}": rel(ours["grads"][mine], theirs["grads"][their])
                 for their, mine in variant.roles(len(LAYERS)).items()})
    return rows


def speed(checkout, batch: int = 4, runs: int = 5, method: str = "MMRL") -> Speed:
    """Their step (their trainer's fp32 step without the optimizer) and ours at the authors'
    base-to-new config (REP_LAYERS 6-12) on one random ViT-B/16, timed side by side; `method`
    MMRL or MMRLpp."""
    variant = {v.name: v for v in (MMRL_VARIANT, MMRLPP_VARIANT)}[method]
    module = import_authors_file(checkout, variant.trainer_file, f"authors_{variant.name.lower()}")
    defaults = variant.options()  # the authors' base-to-new settings
    layers = defaults.rep_layers
    setting = {"alpha": defaults.alpha, "reg_weight": defaults.reg_weight}
    if variant.name == "MMRLpp":
        setting["beta"] = defaults.beta
    classnames = speed_classes()
    clip = build_random_clip("ViT-B/16")
    state = clip.state_dict()
    cfg = variant.cfg(setting, layers, 224)
    with cpu_only():
        theirs = module.CustomCLIP(cfg, classnames, their_clip(module, variant, state, variant.name, layers,
                                                               beta=setting.get("beta", 1.0)))
        zero_shot = their_clip(module, variant, state, "CLIP", layers)
        text_clip = module._get_text_base_features_zero_shot(cfg, classnames, zero_shot, module.TextEncoder_CLIP(zero_shot))
        text_clip = text_clip / text_clip.norm(dim=-1, keepdim=True)
    set_learned(theirs, variant)
    criterion = getattr(module, f"{variant.name}_Loss")(reg_weight=defaults.reg_weight, alpha=defaults.alpha)
    ours = variant.model(clip, classnames, defaults, template=TEMPLATE)
    images, labels = speed_batch(batch, len(classnames))

    def their_loss():
        with torch.no_grad():
            image_clip = zero_shot.visual(images)
            image_clip = image_clip / image_clip.norm(dim=-1, keepdim=True)
        logits, logits_rep, _, image_features, text_features = theirs(images)
        return criterion(logits, logits_rep, image_features, text_features, image_clip, text_clip, labels)

    # their text features: computed on their first evaluation call (the warm-up run), then kept
    return time_method(variant.name, schedule(variant.name, "vit_b16"), ours, train_step(theirs, their_loss),
                       eval_step(theirs, lambda: theirs(images)), images, labels, runs)


def main(variant: Variant = MMRL_VARIANT) -> int:
    parser = argparse.ArgumentParser(description=f"{variant.name} against the authors' code (yunncheng/MMRL)")
    parser.add_argument("checkout", type=Path, help="root of a clone of github.com/yunncheng/MMRL")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        speed(args.checkout, args.batch, args.runs, variant.name)
        return 0
    module = import_authors_file(args.checkout, variant.trainer_file, f"authors_{variant.name.lower()}")
    state = build_random_clip(WIDE_SHAPE).state_dict()
    torch.manual_seed(2)
    images = torch.randn(4, 3, WIDE_SHAPE.image_resolution, WIDE_SHAPE.image_resolution)
    labels = torch.tensor([0, 3, 1, 4])
    worst = 0.0
    for setting in variant.settings:
        theirs = run_theirs(module, variant, state, setting, images, labels)
        keys = ", ".join(f"{key.upper()} {value}" for key, value in setting.items())
        for title, path in PATHS.items():
            rows = compare(variant, theirs, run_ours(variant, state, theirs["start"], setting, path, images, labels))
            difference = report(f"{keys}, LOGIT_SCALE 100: ours {title} vs theirs", rows)
            if not path["fused"]:
                worst = max(worst, difference)
    return verdict(worst, args.tolerance, " on the exact path")


if __name__ == "__main__":
    sys.exit(main())
