"""SEP in OFFICIAL_COMPAT mode against the authors' code (htyao89/SEP): loss, each term, logits, every gradient.

    python bench/compare/sep.py /path/to/SEP-checkout [--preset ViT-B/16]     # the repository root

Their model is their `SEP_main/trainers/sep.py` `CustomCLIP` on their CLIP fork (`clip_text`) with
our random weights, `.cuda()` made a no-op. Their code builds the Token Fusion Modules in fp16 and
runs only at `PREC fp16`; here their whole model is cast to fp32, and their `scale.half()` (s1, s2
rounded to fp16 in every forward) is met by starting s1, s2 at values fp16 holds exactly. Every
learned tensor of theirs gets a random perturbation (so each block's TFM differs), their prototype
classifier (`VPT_fc`, set by their trainer from class means) a random unit-norm matrix, and ours
gets the same values. Their forward returns the loss only; its terms are read from the
cross-entropies and cosine similarities their forward computes (recorded while it runs). Their
`L_IND 0` is our default `LAYERS` (every block but the first). Ours runs with `OFFICIAL_COMPAT True`
on the exact slow path (77-token prompts, CLIP's block forward) and on the default fast path.
The shapes: their code hard-codes ViT-B/16's widths, so `small-b16` (those widths, 4 blocks) or `ViT-B/16`.

    python bench/compare/sep.py /path/to/SEP-checkout --speed [--batch 4 --runs 5]

instead times one training step and one evaluation batch side by side on a random ViT-B/16 in fp32
(50 classes) and estimates one base-to-new run (see `common.time_method`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common import (PATHS, SHAPES, Speed, add_speed_arguments, dassl_like_cfg, eval_step, import_authors_file,
                    loss_terms_and_logits, rel, report, schedule, speed_batch, speed_classes, their_custom_clip,
                    time_method, train_step, verdict)

from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.models import SEP
from clipprompt.models.sep import SEPOptions

CLASSNAMES = ["abyssinian", "american_bulldog", "basset hound", "Yorkshire terrier", "sphynx"]
DATASET, TEMPLATE = "OxfordPets", "a photo of a {}, a type of pet."  # their CUSTOM_TEMPLATES_ori entry
N_CTX, N_CTX_V, W, W_V = 6, 4, 8.0, 6.0
HALF = (".s1", ".s2")  # the TFM scalars their forward rounds to fp16 (OFFICIAL_COMPAT does too)
HALF_TOLERANCE = 2.0 ** -10  # two units in the last place of fp16
# their TFM parameter names (PromptAttention) -> ours (TokenFusion)
TFM_ROLES = {
    "promt_attention_visual.in_proj_weight": "attn.in_proj_weight",
    "promt_attention_visual.in_proj_bias": "attn.in_proj_bias",
    "promt_attention_visual.out_proj.weight": "attn.out_proj.weight",
    "promt_attention_visual.out_proj.bias": "attn.out_proj.bias",
    "ln_pa_1_visual.weight": "ln_1.weight", "ln_pa_1_visual.bias": "ln_1.bias",
    "ln_pa_2_visual.weight": "ln_2.weight", "ln_pa_2_visual.bias": "ln_2.bias",
    "mlp_pa_visual.c_fc1.weight": "mlp.0.weight", "mlp_pa_visual.c_proj.weight": "mlp.2.weight",
    "scale1": "s1", "scale2": "s2",
}


def roles(blocks: int) -> dict[str, str]:
    """Their learned tensor -> ours, for TFMs before blocks 1..blocks-1 (their L_IND 0 on this depth)."""
    names = {"prompt_learner.ctx": "text_prompts.ctx", "prompt_learner.ctx_visual": "visual_prompts.ctx",
             "prompt_learner.VPT_fc.weight": "prototypes"}
    for k in range(blocks - 1):
        for theirs, ours in TFM_ROLES.items():
            names[f"prompt_learner.prompt_projections.{k}.{theirs}"] = f"text_prompts.fusion.{k}.{ours}"
            names[f"prompt_learner.visual_prompts.{k}.{theirs}"] = f"visual_prompts.fusion.{k}.{ours}"
    return names


@contextlib.contextmanager
def recorded_terms() -> dict:
    """Record the cross-entropies and cosine similarities computed inside the block, in call order."""
    record = {"ce": [], "cos": []}
    cross_entropy, cosine = F.cross_entropy, torch.nn.CosineSimilarity.forward

    def recording_ce(*args, **kwargs):
        record["ce"].append(cross_entropy(*args, **kwargs))
        return record["ce"][-1]

    def recording_cos(self, *args):
        record["cos"].append(cosine(self, *args))
        return record["cos"][-1]

    F.cross_entropy, torch.nn.CosineSimilarity.forward = recording_ce, recording_cos
    try:
        yield record
    finally:
        F.cross_entropy, torch.nn.CosineSimilarity.forward = cross_entropy, cosine


def their_terms(record: dict) -> dict[str, torch.Tensor]:
    """Their forward's terms, in our names: CE(prototypes, prompted), CE(prototypes, frozen), CE(logits); cos(text), cos(image)."""
    ce_proto_prompted, ce_proto_frozen, ce = record["ce"]
    text_cos, image_cos = record["cos"]
    return {"ce": ce, "text_cons": 1.0 - text_cos.mean(), "visual_cons": 1.0 - image_cos.mean(),
            "proto": 0.5 * (ce_proto_prompted + ce_proto_frozen)}


def build_pair(module, preset: str, classnames: list[str] = CLASSNAMES):
    """Their CustomCLIP in fp32 with perturbed learned tensors, and our SEP (OFFICIAL_COMPAT) with the same."""
    clip = build_random_clip(SHAPES[preset])
    blocks = len(clip.transformer.resblocks)
    assert blocks == len(clip.visual.transformer.resblocks)
    cfg = dassl_like_cfg({"COOP": {"N_CTX": N_CTX, "N_CTX_V": N_CTX_V, "CTX_INIT": False, "CSC": False,
                                   "CLASS_TOKEN_POSITION": "end", "W": W, "W_V": W_V, "L_IND": 0, "PREC": "fp32"}},
                         DATASET, clip.visual.input_resolution)
    torch.manual_seed(0)
    theirs = their_custom_clip(module, cfg, classnames, clip.state_dict(), "prompt_learner", torch.device("cpu"))
    theirs.float()  # their TFMs are built in fp16
    names = roles(blocks)
    torch.manual_seed(3)
    with torch.no_grad():
        for their in names:
            p = theirs.get_parameter(their)
            if their.endswith(("scale1", "scale2")):  # values fp16 holds: their forward rounds them
                p.copy_((p + 0.05 * torch.randn_like(p)).half().float())
            elif their.endswith("VPT_fc.weight"):
                p.copy_(F.normalize(torch.randn_like(p), dim=-1))
            else:
                p.add_(0.02 * torch.randn_like(p))
    ours = SEP(clip, classnames, SEPOptions(n_ctx=N_CTX, n_ctx_v=N_CTX_V, w=W, w_v=W_V, official_compat=True),
               template=TEMPLATE)
    state = {mine: theirs.get_parameter(their).detach().reshape(ours.get_parameter(mine).shape)
             for their, mine in names.items()}
    ours.load_prototypes(state.pop("prototypes"))
    ours.load_trainable_state_dict(state)
    return theirs, ours, names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of github.com/htyao89/SEP")
    parser.add_argument("--preset", default="small-b16", choices=["small-b16", "ViT-B/16"],
                        help="random CLIP shape (their code needs ViT-B/16's widths)")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        speed(args.checkout, args.batch, args.runs)
        return 0
    module = import_authors_file(args.checkout / "SEP_main", "trainers/sep.py", "authors_sep")
    theirs, ours, names = build_pair(module, args.preset)
    resolution = ours.image_encoder.input_resolution
    torch.manual_seed(1)
    images, labels = torch.randn(4, 3, resolution, resolution), torch.tensor([0, 3, 1, 4])

    theirs.train()
    with recorded_terms() as record:
        _, their_loss = theirs(images, labels)
    their_loss.backward()
    terms = their_terms(record)
    theirs.eval()
    with torch.no_grad():
        their_logits = theirs(images)

    worst = worst_half = 0.0
    for mode, settings in PATHS.items():
        loss, our_terms, logits = loss_terms_and_logits(ours.configure(**settings), images, labels, as_trainer=True)
        rows = {"loss": rel(loss, their_loss)}
        rows.update({f"term {name}": rel(torch.tensor(our_terms[name]), value) for name, value in terms.items()})
        rows["logits"] = rel(logits, their_logits)
        rows.update({f"grad {mine}{' (fp16 in theirs)' if mine.endswith(HALF) else ''}":
                     rel(ours.get_parameter(mine).grad, theirs.get_parameter(their).grad)
                     for their, mine in names.items()})
        report(f"SEP OFFICIAL_COMPAT, {args.preset}, {mode}", rows)
        worst = max(worst, *(v for name, v in rows.items() if not name.endswith("(fp16 in theirs)")))
        worst_half = max(worst_half, *(v for name, v in rows.items() if name.endswith("(fp16 in theirs)")))
    # s1, s2 pass through `.half()` in their forward: their gradients are fp16, one unit in the last place 4.9e-4
    return verdict(worst, args.tolerance, " in fp32") | verdict(worst_half, HALF_TOLERANCE, " of the fp16 gradients")


def speed(checkout: Path, batch: int = 4, runs: int = 5) -> Speed:
    """Their CustomCLIP and our SEP (OFFICIAL_COMPAT) on one random ViT-B/16, timed side by side."""
    module = import_authors_file(checkout / "SEP_main", "trainers/sep.py", "authors_sep")
    theirs, ours, _ = build_pair(module, "ViT-B/16", speed_classes())
    images, labels = speed_batch(batch, ours.num_classes)
    return time_method("SEP", schedule("SEP", "vit_b16_ep50_batch32"), ours,
                       train_step(theirs, lambda: theirs(images, labels)[1]), eval_step(theirs, lambda: theirs(images)),
                       images, labels, runs)


if __name__ == "__main__":
    sys.exit(main())
