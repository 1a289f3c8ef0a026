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
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import types

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode as CN

from _common import import_authors_file, our_clip, random_clip_state, rel, report, their_clip

from clipprompt.models import PromptSRC
from clipprompt.models.promptsrc import GaussianPromptAverage, PromptSRCOptions, gaussian_epoch_weights

CLASSNAMES = ["dog", "fire_truck", "sea lion", "snowy owl", "hot air balloon"]
N_CTX_TEXT, N_CTX_VISION, DEPTH_TEXT, DEPTH_VISION = 4, 3, 3, 4
EPOCHS, GPA_MEAN, GPA_STD = 4, 3.0, 1.0
OPTIONS = dict(
    n_ctx_text=N_CTX_TEXT, n_ctx_vision=N_CTX_VISION, prompt_depth_text=DEPTH_TEXT, prompt_depth_vision=DEPTH_VISION,
    text_loss_weight=25.0, image_loss_weight=10.0, gpa_mean=GPA_MEAN, gpa_std=GPA_STD,
)

# their parameter name -> ours
ROLES = {
    "prompt_learner.ctx": "ctx",
    "image_encoder.VPT": "visual_ctx",
    **{f"image_encoder.transformer.resblocks.{k + 1}.VPT_shallow": f"deep_visual.{k}" for k in range(DEPTH_VISION - 1)},
    **{f"text_encoder.transformer.resblocks.{k + 1}.VPT_shallow": f"deep_text.{k}" for k in range(DEPTH_TEXT - 1)},
}


class RoundedHalf(torch.Tensor):
    """A tensor whose `.half()` rounds to fp16 and stays fp32 (see the module docstring)."""

    def half(self, *args, **kwargs):
        return torch.Tensor.half(self.as_subclass(torch.Tensor)).float().as_subclass(RoundedHalf)


@contextlib.contextmanager
def cuda_is_identity():
    saved = torch.Tensor.cuda, nn.Module.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda, nn.Module.cuda = saved


def config() -> CN:
    cfg = CN()
    cfg.TRAINER = CN({"PROMPTSRC": CN({
        "N_CTX_TEXT": N_CTX_TEXT, "N_CTX_VISION": N_CTX_VISION, "CTX_INIT": "a photo of a", "PREC": "fp32",
        "PROMPT_DEPTH_TEXT": DEPTH_TEXT, "PROMPT_DEPTH_VISION": DEPTH_VISION,
        "TEXT_LOSS_WEIGHT": 25.0, "IMAGE_LOSS_WEIGHT": 10.0, "GPA_MEAN": GPA_MEAN, "GPA_STD": GPA_STD,
    })})
    cfg.INPUT = CN({"SIZE": (32, 32)})
    cfg.OPTIM = CN({"MAX_EPOCH": EPOCHS})
    return cfg


def build_theirs(module, state: dict):
    cfg = config()
    node = cfg.TRAINER.PROMPTSRC

    def load_clip_to_cpu(cfg, zero_shot_model=False):  # their function downloads; same design, our weights
        depths = (0, 0, 0, 0) if zero_shot_model else (
            node.PROMPT_DEPTH_VISION, node.PROMPT_DEPTH_TEXT, node.N_CTX_VISION, node.N_CTX_TEXT)
        design = dict(zip(("vision_depth", "language_depth", "vision_ctx", "language_ctx"), depths), trainer="IVLP")
        return their_clip(module.authors_clip, state, design)

    module.load_clip_to_cpu = load_clip_to_cpu
    with cuda_is_identity():
        model = module.CustomCLIP(cfg, CLASSNAMES, load_clip_to_cpu(cfg)).float()
    learner = model.prompt_learner
    learner.fixed_embeddings = learner.fixed_embeddings.as_subclass(RoundedHalf)
    for name, param in model.named_parameters():  # what their trainer leaves trainable
        param.requires_grad_(("prompt_learner" in name or "VPT" in name) and "ZS_image_encoder" not in name)
    learnable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert learnable == set(ROLES), sorted(learnable ^ set(ROLES))
    return model, cfg


def stand_in_trainer(module, model, cfg, lr: float):
    """What their `PromptSRC.forward_backward` reads from its trainer, with their own GPA helpers."""
    trainer_class = module.PromptSRC
    fake = types.SimpleNamespace(
        model=model, cfg=cfg, scaler=None, batch_idx=0, num_batches=1, step_counter=1, previous_model_gpa=None,
        optim=torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr),
        update_lr=lambda: None,
    )
    for name in ("parse_batch_train", "state_dict_weighting", "state_dict_add", "get_gauss"):
        setattr(fake, name, functools.partial(getattr(trainer_class, name), fake))
    fake.device = torch.device("cpu")
    gauss = fake.get_gauss(GPA_MEAN, GPA_STD)  # their build_model's GPA weights
    weights = np.array([gauss(a) for a in range(1, EPOCHS + 1)])
    fake.gauss = weights / sum(weights)
    fake.forward_backward = functools.partial(trainer_class.forward_backward, fake)
    return fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="a checkout of github.com/muzairkhattak/PromptSRC")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    module = import_authors_file(args.checkout, "trainers/promptsrc.py", "authors_promptsrc")
    state = random_clip_state(seed=0)
    torch.manual_seed(1)
    theirs, cfg = build_theirs(module, state)
    start = {name: p.detach().clone() for name, p in theirs.named_parameters() if p.requires_grad}
    torch.manual_seed(2)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 1, 4])
    batch = {"img": images, "label": labels}

    trainer = stand_in_trainer(module, theirs, cfg, lr=0.0)  # lr 0: gradients without moving the prompts
    with cuda_is_identity():
        their_loss = torch.tensor(trainer.forward_backward(batch)["loss"], dtype=torch.float64)
    their_grads = {name: p.grad.clone() for name, p in theirs.named_parameters() if p.requires_grad}
    theirs.eval()
    with torch.no_grad():
        their_logits = theirs(images)

    def ours_model(half: bool, fast: bool = True) -> PromptSRC:
        model = PromptSRC(our_clip(state), CLASSNAMES, PromptSRCOptions(**OPTIONS, half_prompts=half))
        model.load_trainable_state_dict({mine: start[their] for their, mine in ROLES.items()})
        return model.configure(eos_cut=fast, fused=fast)

    worst = {}
    for title, half, fast in [
        ("ours, HALF_PROMPTS True (the authors' fp16 casts), fast paths (EOS cut, SDPA)", True, True),
        ("ours, HALF_PROMPTS True, slow paths (77 tokens, CLIP's block forward)", True, False),
        ("ours, default HALF_PROMPTS False: differs by the fp16 rounding", False, True),
    ]:
        ours = ours_model(half, fast)
        loss, _ = ours.loss(images, labels)
        loss.backward()
        with torch.no_grad():
            logits = ours(images)
        rows = [("loss (CE + 3 constraints)", rel(loss, their_loss)), ("logits", rel(logits, their_logits))]
        rows += [(f"grad {mine} ({their})", rel(dict(ours.named_parameters())[mine].grad, their_grads[their]))
                 for their, mine in ROLES.items()]
        worst[title] = report(title, rows)

    # Gaussian prompt aggregation over EPOCHS one-batch epochs of SGD, both sides from the same start.
    theirs.train()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if p.requires_grad:
                p.copy_(start[name])
    trainer = stand_in_trainer(module, theirs, cfg, lr=0.05)
    with cuda_is_identity():
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
    final = dict(theirs.named_parameters())
    rows = [("GPA weights", rel(torch.tensor(average.weights), torch.tensor(trainer.gauss)))]
    rows += [(f"{mine} after GPA ({their})", rel(dict(ours.named_parameters())[mine], final[their]))
             for their, mine in ROLES.items()]
    worst[f"HALF_PROMPTS True, slow paths: {EPOCHS} SGD epochs + GPA"] = report(
        f"ours, HALF_PROMPTS True, slow paths: prompts after {EPOCHS} SGD epochs and GPA", rows)

    faithful = [v for t, v in worst.items() if "HALF_PROMPTS True" in t]
    verdict = "MATCH" if max(faithful) < args.tolerance else "MISMATCH"
    print(f"\n{verdict}: largest relative difference with HALF_PROMPTS True {max(faithful):.2e} "
          f"(tolerance {args.tolerance:.0e})")
    raise SystemExit(0 if verdict == "MATCH" else 1)


if __name__ == "__main__":
    main()
