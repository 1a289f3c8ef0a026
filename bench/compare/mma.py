"""MMA against the authors' code (ZjjConan/Multi-Modal-Adapter): the same random CLIP, batch and
adapters; loss, logits and every adapter's gradient.

    git clone https://github.com/ZjjConan/Multi-Modal-Adapter /tmp/mma-code
    python bench/compare/mma.py /tmp/mma-code

Their model is `trainers/mmadapter.py`'s `CustomCLIP` on their fork of CLIP (whose blocks run the
adapters and the gradient-scale layers), fp32, with our random weights; ours is
`clipprompt.models.MMA`, with their initial adapters copied in (the parameter names are the same).
Two settings on a 4-block CLIP: adapters on blocks 2..4 (as their configs: not the inputs), and
0..4 (the word embeddings and ln_pre's output too); ADAPTER_SCALE 0.001, as their configs. The
trainer computes cross-entropy on `CustomCLIP(images)`; the evaluation logits come from their eval
mode (text features computed once). The verdict is the exact path's (77-token prompts, CLIP's block
forward; tolerance 1e-6); the fast path is printed beside it. Not run in CI (needs their checkout).

    python bench/compare/mma.py /tmp/mma-code --speed [--batch 4 --runs 5]

instead times one training step (cross-entropy, backward) and one evaluation batch (text features
cached, as both evaluate) side by side on a random ViT-B/16 in fp32, their configs' adapters
(blocks 5..12), 50 classes, interleaved, prints the medians and authors' time / ours, and estimates
one base-to-new run (see `common.time_method`).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from common import (PATHS, WIDE_SHAPE, Speed, add_speed_arguments, cpu_only, dassl_like_cfg, eval_step,
                    import_authors_file, loss_and_logits, rel, report, schedule, speed_batch, speed_classes, their_clip,
                    time_method, train_step, verdict)

from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.models import MMA
from clipprompt.models.mma import MMAOptions

CLASSNAMES = ["dog", "fire_truck", "sea lion", "snowy owl", "hot air balloon"]
SETTINGS = [(2, 4), (0, 4)]  # (ADAPTER_START, ADAPTER_END) on the 4-block CLIP
SCALE, DIM = 0.001, 32
LEARNED = ("text_adapter", "visual_adapter", "shared_adapter")  # what their trainer leaves trainable


def build_theirs(module, state: dict, start: int, end: int):
    node = {"TEXT_CTX_INIT": "a photo of a", "ADAPTER_START": start, "ADAPTER_END": end,
            "ADAPTER_DIM": DIM, "ADAPTER_SCALE": SCALE, "PREC": "fp32"}
    cfg = dassl_like_cfg({"MMADAPTER": node}, "Caltech101", WIDE_SHAPE.image_resolution)
    with cpu_only():
        model = module.CustomCLIP(cfg, CLASSNAMES, their_clip(module.clip, state))
    for name, param in model.named_parameters():
        param.requires_grad_(any(part in name for part in LEARNED))
    return model


def run_theirs(model, images, labels):
    model.train()
    model.zero_grad()
    with cpu_only():
        loss = F.cross_entropy(model(images), labels)  # their trainer's forward_backward
        loss.backward()
        model.eval()
        with torch.no_grad():
            logits = model(images)
    grads = {name.removeprefix("adapter_learner."): p.grad.clone()
             for name, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), logits, grads


def run_ours(model, images, labels):
    loss, logits = loss_and_logits(model, images, labels)
    return loss, logits, {name: p.grad for name, p in model.named_parameters() if p.requires_grad}


def compare(theirs_out, ours_out) -> dict[str, float]:
    (loss_t, logits_t, grads_t), (loss_o, logits_o, grads_o) = theirs_out, ours_out
    assert set(grads_t) == set(grads_o), sorted(set(grads_t) ^ set(grads_o))
    rows = {"loss": rel(loss_o, loss_t), "logits": rel(logits_o, logits_t)}
    rows.update({f"grad {name}": rel(grads_o[name], grads_t[name]) for name in sorted(grads_t)})
    return rows


def speed(checkout, batch: int = 4, runs: int = 5) -> Speed:
    """Their CustomCLIP and our MMA at their base-to-new config (adapters on blocks 5..12) on one random
    ViT-B/16, timed side by side."""
    module = import_authors_file(checkout, "trainers/mmadapter.py", "authors_mma")
    classnames = speed_classes()
    clip = build_random_clip("ViT-B/16")
    node = {"TEXT_CTX_INIT": "a photo of a", "ADAPTER_START": 5, "ADAPTER_END": 12,
            "ADAPTER_DIM": DIM, "ADAPTER_SCALE": SCALE, "PREC": "fp32"}
    with cpu_only():
        theirs = module.CustomCLIP(dassl_like_cfg({"MMADAPTER": node}, "Caltech101", 224), classnames,
                                   their_clip(module.clip, clip.state_dict()))
    for name, param in theirs.named_parameters():
        param.requires_grad_(any(part in name for part in LEARNED))
    ours = MMA(clip, classnames, MMAOptions())
    ours.load_trainable_state_dict({n.removeprefix("adapter_learner."): p.detach()
                                    for n, p in theirs.named_parameters() if p.requires_grad})
    images, labels = speed_batch(batch, len(classnames))
    # their text features: computed at the first evaluation batch, then kept (the warm-up run)
    return time_method("MMA", schedule("MMA", "vit_b16_ep5"), ours,
                       train_step(theirs, lambda: F.cross_entropy(theirs(images), labels)),
                       eval_step(theirs, lambda: theirs(images)), images, labels, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="a checkout of github.com/ZjjConan/Multi-Modal-Adapter")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        speed(args.checkout, args.batch, args.runs)
        return
    module = import_authors_file(args.checkout, "trainers/mmadapter.py", "authors_mma")
    state = build_random_clip(WIDE_SHAPE).state_dict()
    torch.manual_seed(2)
    images = torch.randn(4, 3, WIDE_SHAPE.image_resolution, WIDE_SHAPE.image_resolution)
    labels = torch.tensor([0, 3, 1, 4])

    faithful = 0.0
    for start, end in SETTINGS:
        torch.manual_seed(1)
        theirs = build_theirs(module, state, start, end)
        theirs_out = run_theirs(theirs, images, labels)
        adapters = {name.removeprefix("adapter_learner."): p.detach()
                    for name, p in theirs.named_parameters() if p.requires_grad}
        for title, paths in PATHS.items():
            ours = MMA(build_random_clip(WIDE_SHAPE), CLASSNAMES,
                       MMAOptions(adapter_start=start, adapter_end=end, adapter_dim=DIM, adapter_scale=SCALE))
            ours.load_trainable_state_dict(adapters)
            ours.configure(**paths)
            worst = report(f"MMA, adapters on blocks {start}..{end}: ours on the {title} path against theirs",
                           compare(theirs_out, run_ours(ours, images, labels)))
            if not paths["fused"]:
                faithful = max(faithful, worst)
    raise SystemExit(verdict(faithful, args.tolerance, " on the exact path"))


if __name__ == "__main__":
    main()
