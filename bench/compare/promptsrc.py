"""PromptSRC against the authors' code: the same random CLIP, batch and prompts; loss, logits, gradients, GPA.

    git clone https://github.com/muzairkhattak/PromptSRC /tmp/promptsrc
    python bench/compare/promptsrc.py /tmp/promptsrc

Their model is built from their `trainers/promptsrc.py` with their fork of CLIP (fp32), and their
loss is their trainer's own `forward_backward`, called on a stand-in trainer. Stubs: their
`load_clip_to_cpu` (which downloads) returns their fork over our random weights, `.cuda()` is the
identity (this runs on the CPU), and the teacher text features' `.half()` rounds to fp16 but keeps
fp32 (in their fp16-only code both sides of that product are fp16; in fp32 it would not run).
`HALF_PROMPTS True` makes ours cast as theirs does and must agree to ~1e-5; our default is shown too.
Then a few SGD epochs with Gaussian prompt aggregation on both sides. Not run in CI.

    python bench/compare/promptsrc.py /tmp/promptsrc --speed [--batch 4 --runs 5]

instead times one training step and one evaluation batch side by side on a random ViT-B/16 in fp32
(the authors' base-to-new config; our default fp32 prompts; 50 classes) and estimates one base-to-new
run (see `common.time_method`).
"""

from __future__ import annotations

import argparse
import functools
import types

import numpy as np
import torch
from yacs.config import CfgNode as CN

from common import (SHAPES, Speed, add_preset_argument, add_speed_arguments, cpu_only, eval_step, import_authors_file,
                    loss_and_logits, rel, report, schedule, speed_batch, speed_classes, their_clip, time_method,
                    verdict)

from clipprompt.models import PromptSRC
from clipprompt.models.promptsrc import GaussianPromptAverage, PromptSRCOptions, gaussian_epoch_weights
from clipprompt.backbones.random_clip import build_random_clip

CLASSNAMES = ["dog", "fire_truck", "sea lion", "snowy owl", "hot air balloon"]
N_CTX_TEXT, N_CTX_VISION, DEPTH_TEXT, DEPTH_VISION = 4, 3, 3, 4
EPOCHS, GPA_MEAN, GPA_STD = 4, 3.0, 1.0
OPTIONS = dict(
    n_ctx_text=N_CTX_TEXT, n_ctx_vision=N_CTX_VISION, prompt_depth_text=DEPTH_TEXT, prompt_depth_vision=DEPTH_VISION,
    text_loss_weight=25.0, image_loss_weight=10.0, gpa_mean=GPA_MEAN, gpa_std=GPA_STD,
)

def roles(depth_text: int = DEPTH_TEXT, depth_vision: int = DEPTH_VISION) -> dict[str, str]:
    """Their parameter name -> ours."""
    return {
        "prompt_learner.ctx": "ctx",
        "image_encoder.VPT": "visual_ctx",
        **{f"image_encoder.transformer.resblocks.{k + 1}.VPT_shallow": f"deep_visual.{k}" for k in range(depth_vision - 1)},
        **{f"text_encoder.transformer.resblocks.{k + 1}.VPT_shallow": f"deep_text.{k}" for k in range(depth_text - 1)},
    }


ROLES = roles()
# The authors' base-to-new config (configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml).
BASE_TO_NEW = dict(n_ctx_text=4, n_ctx_vision=4, prompt_depth_text=9, prompt_depth_vision=9, text_loss_weight=25.0,
                   image_loss_weight=10.0, gpa_mean=15.0, gpa_std=1.0)
BASE_TO_NEW_EPOCHS = 20


class RoundedHalf(torch.Tensor):
    """A tensor whose `.half()` rounds to fp16 and stays fp32 (see the module docstring)."""

    def half(self, *args, **kwargs):
        return torch.Tensor.half(self.as_subclass(torch.Tensor)).float().as_subclass(RoundedHalf)


def config(resolution: int, options: dict = OPTIONS, epochs: int = EPOCHS) -> CN:
    """Their config node from our options' values."""
    cfg = CN()
    cfg.TRAINER = CN({"PROMPTSRC": CN({
        **{name.upper(): value for name, value in options.items()}, "CTX_INIT": "a photo of a", "PREC": "fp32",
    })})
    cfg.INPUT = CN({"SIZE": (resolution, resolution)})
    cfg.OPTIM = CN({"MAX_EPOCH": epochs})
    return cfg


def build_theirs(module, state: dict, resolution: int, options: dict = OPTIONS, epochs: int = EPOCHS,
                 classnames=CLASSNAMES):
    cfg = config(resolution, options, epochs)
    node = cfg.TRAINER.PROMPTSRC

    def load_clip_to_cpu(cfg, zero_shot_model=False):  # their function downloads; same design, our weights
        depths = (0, 0, 0, 0) if zero_shot_model else (
            node.PROMPT_DEPTH_VISION, node.PROMPT_DEPTH_TEXT, node.N_CTX_VISION, node.N_CTX_TEXT)
        design = dict(zip(("vision_depth", "language_depth", "vision_ctx", "language_ctx"), depths), trainer="IVLP")
        return their_clip(module.clip, state, design)

    module.load_clip_to_cpu = load_clip_to_cpu
    with cpu_only():
        model = module.CustomCLIP(cfg, classnames, load_clip_to_cpu(cfg)).float()
    learner = model.prompt_learner
    learner.fixed_embeddings = learner.fixed_embeddings.as_subclass(RoundedHalf)
    for name, param in model.named_parameters():  # what their trainer leaves trainable
        param.requires_grad_(("prompt_learner" in name or "VPT" in name) and "ZS_image_encoder" not in name)
    learnable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = set(roles(node.PROMPT_DEPTH_TEXT, node.PROMPT_DEPTH_VISION))
    assert learnable == expected, sorted(learnable ^ expected)
    return model, cfg


def stand_in_trainer(module, model, cfg, lr: float, num_batches: int = 1):
    """What their `PromptSRC.forward_backward` reads from its trainer, with their own GPA helpers
    (every call ends an epoch when `num_batches` is 1; none does when it is 2)."""
    trainer_class = module.PromptSRC
    node = cfg.TRAINER.PROMPTSRC
    fake = types.SimpleNamespace(
        model=model, cfg=cfg, scaler=None, batch_idx=0, num_batches=num_batches, step_counter=1, previous_model_gpa=None,
        optim=torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr),
        update_lr=lambda: None,
    )
    for name in ("parse_batch_train", "state_dict_weighting", "state_dict_add", "get_gauss"):
        setattr(fake, name, functools.partial(getattr(trainer_class, name), fake))
    fake.device = torch.device("cpu")
    gauss = fake.get_gauss(node.GPA_MEAN, node.GPA_STD)  # their build_model's GPA weights
    weights = np.array([gauss(a) for a in range(1, cfg.OPTIM.MAX_EPOCH + 1)])
    fake.gauss = weights / sum(weights)
    fake.forward_backward = functools.partial(trainer_class.forward_backward, fake)
    return fake


def speed(checkout, batch: int = 4, runs: int = 5) -> Speed:
    """Their trainer's step (`forward_backward`, SGD at learning rate 0, no epoch end) and ours at the
    authors' base-to-new config on one random ViT-B/16, side by side (our default fp32 prompts)."""
    module = import_authors_file(checkout, "trainers/promptsrc.py", "authors_promptsrc")
    classnames = speed_classes()
    clip = build_random_clip("ViT-B/16")
    torch.manual_seed(1)
    theirs, cfg = build_theirs(module, clip.state_dict(), 224, BASE_TO_NEW, BASE_TO_NEW_EPOCHS, classnames)
    ours = PromptSRC(clip, classnames, PromptSRCOptions(**BASE_TO_NEW))
    ours.load_trainable_state_dict({mine: theirs.get_parameter(their).detach() for their, mine in roles(9, 9).items()})
    images, labels = speed_batch(batch, len(classnames))
    trainer = stand_in_trainer(module, theirs, cfg, lr=0.0, num_batches=2)

    def their_train():
        theirs.train()
        trainer.forward_backward({"img": images, "label": labels})

    return time_method("PromptSRC", schedule("PromptSRC", "vit_b16_c2_ep20_batch4_4+4ctx"), ours, their_train,
                       eval_step(theirs, lambda: theirs(images)), images, labels, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="a checkout of github.com/muzairkhattak/PromptSRC")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    add_preset_argument(parser, default="wide")
    add_speed_arguments(parser)
    args = parser.parse_args()
    if args.speed:
        speed(args.checkout, args.batch, args.runs)
        return
    shape = SHAPES[args.preset]

    module = import_authors_file(args.checkout, "trainers/promptsrc.py", "authors_promptsrc")
    state = build_random_clip(shape).state_dict()
    torch.manual_seed(1)
    theirs, cfg = build_theirs(module, state, shape.image_resolution)
    start = {name: p.detach().clone() for name, p in theirs.named_parameters() if p.requires_grad}
    torch.manual_seed(2)
    images, labels = torch.randn(4, 3, shape.image_resolution, shape.image_resolution), torch.tensor([0, 3, 1, 4])
    batch = {"img": images, "label": labels}

    trainer = stand_in_trainer(module, theirs, cfg, lr=0.0)  # lr 0: gradients without moving the prompts
    with cpu_only():
        their_loss = torch.tensor(trainer.forward_backward(batch)["loss"], dtype=torch.float64)
    their_grads = {name: p.grad.clone() for name, p in theirs.named_parameters() if p.requires_grad}
    theirs.eval()
    with torch.no_grad():
        their_logits = theirs(images)

    def ours_model(half: bool, fast: bool = True) -> PromptSRC:
        model = PromptSRC(build_random_clip(shape), CLASSNAMES, PromptSRCOptions(**OPTIONS, half_prompts=half))
        model.load_trainable_state_dict({mine: start[their] for their, mine in ROLES.items()})
        return model.configure(eos_cut=fast, fused=fast)

    faithful = 0.0  # the largest difference with HALF_PROMPTS True: what must match
    for title, half, fast in [
        ("ours, HALF_PROMPTS True (the authors' fp16 casts), fast paths (EOS cut, SDPA)", True, True),
        ("ours, HALF_PROMPTS True, slow paths (77 tokens, CLIP's block forward)", True, False),
        ("ours, default HALF_PROMPTS False: differs by the fp16 rounding", False, True),
    ]:
        ours = ours_model(half, fast)
        loss, logits = loss_and_logits(ours, images, labels)
        rows = {"loss (CE + 3 constraints)": rel(loss, their_loss), "logits": rel(logits, their_logits)}
        rows.update({f"grad {mine} ({their})": rel(ours.get_parameter(mine).grad, their_grads[their])
                     for their, mine in ROLES.items()})
        worst = report(title, rows)
        if half:
            faithful = max(faithful, worst)

    # Gaussian prompt aggregation over EPOCHS one-batch epochs of SGD, both sides from the same start.
    theirs.train()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if p.requires_grad:
                p.copy_(start[name])
    trainer = stand_in_trainer(module, theirs, cfg, lr=0.05)
    with cpu_only():
        for _ in range(EPOCHS):
            theirs.zero_grad()
            trainer.forward_backward(batch)
    ours = ours_model(half=True, fast=False)
    optim = torch.optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=0.05)
    average = GaussianPromptAverage(gaussian_epoch_weights(EPOCHS, GPA_MEAN, GPA_STD))
    for epoch in range(EPOCHS):
        loss, _ = ours.loss(images, labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
        average.add(epoch, ours.trainable_state_dict())
    ours.load_trainable_state_dict(average.result())
    rows = {"GPA weights": rel(torch.tensor(average.weights), torch.tensor(trainer.gauss))}
    rows.update({f"{mine} after GPA ({their})": rel(ours.get_parameter(mine), theirs.get_parameter(their))
                 for their, mine in ROLES.items()})
    faithful = max(faithful, report(f"ours, HALF_PROMPTS True, slow paths: prompts after {EPOCHS} SGD epochs and GPA", rows))
    raise SystemExit(verdict(faithful, args.tolerance, " with HALF_PROMPTS True"))


if __name__ == "__main__":
    main()
