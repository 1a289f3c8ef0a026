"""ProGrad against the authors' code (BeierZhu/Prompt-align): the same random CLIP, batch and context;
both losses, logits and the projected gradient.

    git clone https://github.com/BeierZhu/Prompt-align /tmp/prograd-code
    python bench/compare/prograd.py /tmp/prograd-code

Their model is `ProGrad.public/trainers/prograd.py`'s `CustomCLIP` and zero-shot `CLIP` (on their CLIP
fork, fp32); their gradient projection is the method `prograd_backward_and_update` of their Dassl
fork's trainer (`Dassl.ProGrad.pytorch/dassl/engine/trainer.py`), which this script reads from the
checkout and runs on their model (an optimizer with learning rate 0 leaves the projected gradient in
`.grad`). Settings: the authors' base-to-new run (N_CTX 16, CTX_INIT True: the context starts from
the dataset's prompt) on OxfordPets, whose prompt "a type of pet, a photo of a {}." has 8 words and
9 tokens, and on Caltech101 with a random context; LAMBDA 1 and 0.5, T 1 and 2. The verdict is
the exact path's (tolerance 1e-6); the fast path is printed beside it. Not run in CI.

    python bench/compare/prograd.py /tmp/prograd-code --speed [--batch 4 --runs 5]

instead times one training step (theirs: student and zero-shot forward, their projection with an
SGD step at learning rate 0; ours: `loss` backpropagated) and one evaluation batch side by side on a
random ViT-B/16 in fp32 (the base-to-new settings: 16 context vectors from Caltech101's prompt, λ 1,
T 1; 50 classes) and estimates one base-to-new run (see `common.time_method`).
"""

from __future__ import annotations

import argparse
import ast
import sys
import types
from pathlib import Path

import torch

from common import (PATHS, Speed, add_speed_arguments, dassl_like_cfg, eval_step, import_authors_file, rel, report,
                    schedule, speed_batch, speed_classes, their_clip, time_method, verdict)

from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.models import ProGrad
from clipprompt.models.prograd import ProGradOptions, authors_template
from clipprompt.data.catalog import CATALOG

CLASSNAMES = ["dog", "fire truck", "sea lion", "Yorkshire terrier", "owl"]
SETTINGS = [("OxfordPets", True, 1.0, 1.0), ("OxfordPets", True, 0.5, 2.0), ("Caltech101", False, 1.0, 1.0)]


def their_projection(checkout: Path):
    """`prograd_backward_and_update`, read from their Dassl fork and compiled on its own."""
    path = checkout / "Dassl.ProGrad.pytorch" / "dassl" / "engine" / "trainer.py"
    tree = ast.parse(path.read_text())
    function = next(node for node in ast.walk(tree)
                    if isinstance(node, ast.FunctionDef) and node.name == "prograd_backward_and_update")
    namespace = {"torch": torch}
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(path), "exec"), namespace)
    return namespace["prograd_backward_and_update"]


def build_theirs(module, dataset: str, init: bool, clip, classnames=CLASSNAMES):
    """Their CustomCLIP (only the prompt learner trains) and their zero-shot CLIP, on `clip`'s weights."""
    state = clip.state_dict()
    cfg = dassl_like_cfg({"COOP": {"N_CTX": 16, "CTX_INIT": init, "CSC": False, "CLASS_TOKEN_POSITION": "end",
                                   "PREC": "fp32"}}, dataset, clip.visual.input_resolution)
    module.load_clip_to_cpu = lambda cfg: their_clip(module.clip, state)
    torch.manual_seed(0)
    model = module.CustomCLIP(cfg, classnames, their_clip(module.clip, state))
    zero_shot = module.CLIP(cfg, classnames)
    for name, param in model.named_parameters():
        param.requires_grad_("prompt_learner" in name)
    return model, zero_shot


def their_step(module, projection, model, zero_shot, lam: float, t: float, images, labels):
    """Their trainer's step: the student's and the zero-shot logits, both losses, their projection
    (backward, the projected gradient left in `.grad`: the SGD step has learning rate 0)."""
    learner = model.prompt_learner
    output = model(images)
    with torch.no_grad():
        teacher = zero_shot(images)
    xe, kl = module.ProGradLoss(T=t)(output, teacher, labels)
    optim = torch.optim.SGD(learner.parameters(), lr=0.0)
    trainer = types.SimpleNamespace(
        _models={"prompt_learner": learner}, _optims={"prompt_learner": optim},
        get_model_names=lambda names=None: ["prompt_learner"], detect_anomaly=lambda loss: None,
        model_zero_grad=lambda names=None: optim.zero_grad())
    projection(trainer, xe, kl, lam)
    return xe, kl, output


def run_theirs(module, projection, dataset: str, init: bool, lam: float, t: float, clip, images, labels):
    model, zero_shot = build_theirs(module, dataset, init, clip)
    xe, kl, output = their_step(module, projection, model, zero_shot, lam, t, images, labels)
    learner = model.prompt_learner
    return learner.ctx.detach().clone(), xe.detach(), kl.detach(), output.detach(), learner.ctx.grad.clone()


def compare(module, projection, dataset: str, init: bool, lam: float, t: float) -> float:
    clip = build_random_clip("tiny")
    torch.manual_seed(1)
    images = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([0, 3, 1, 4])
    ctx, xe, kl, logits, grad = run_theirs(module, projection, dataset, init, lam, t, clip, images, labels)
    template = authors_template(dataset, CATALOG[dataset].template if dataset in CATALOG else "a photo of a {}.")
    ours = ProGrad(clip, CLASSNAMES, ProGradOptions(n_ctx=16, template_init=init, lambda_=lam, t=t), template=template)
    worst = 0.0
    rows_init = {"initial context": rel(ours.ctx, ctx)} if init else {}
    with torch.no_grad():
        ours.ctx.copy_(ctx)
    for mode, settings in PATHS.items():
        ours.configure(**settings)
        ours.zero_grad()
        loss, summary = ours.loss(images, labels)
        loss.backward()
        with torch.no_grad():
            our_logits = ours(images)
        difference = report(f"ProGrad on {dataset}, CTX_INIT {init}, LAMBDA {lam}, T {t}: {mode}", {
            **rows_init,
            "loss (cross-entropy)": rel(torch.tensor(summary["loss"]), xe),
            "distillation term": rel(torch.tensor(summary["kd"]), kl),
            "logits": rel(our_logits, logits),
            "projected grad ctx": rel(ours.ctx.grad, grad),
        })
        if mode.startswith("exact"):  # the verdict: the exact path must give their bits
            worst = max(worst, difference)
    return worst


def speed(checkout: Path, batch: int = 4, runs: int = 5) -> Speed:
    """Their ProGrad step and ours (base-to-new settings on Caltech101) on one random ViT-B/16, side by side."""
    module = import_authors_file(checkout / "ProGrad.public", "trainers/prograd.py", "authors_prograd")
    projection = their_projection(checkout)
    classnames = speed_classes()
    clip = build_random_clip("ViT-B/16")
    theirs, zero_shot = build_theirs(module, "Caltech101", True, clip, classnames)
    ours = ProGrad(clip, classnames, ProGradOptions(n_ctx=16),
                   template=authors_template("Caltech101", CATALOG["Caltech101"].template))
    images, labels = speed_batch(batch, len(classnames))

    def their_train():
        theirs.train()
        their_step(module, projection, theirs, zero_shot, 1.0, 1.0, images, labels)

    return time_method("ProGrad", schedule("ProGrad", "vit_b16_ep100"), ours, their_train,
                       eval_step(theirs, lambda: theirs(images)), images, labels, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a clone of github.com/BeierZhu/Prompt-align")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    add_speed_arguments(parser)
    args = parser.parse_args()
    if not (args.checkout / "ProGrad.public" / "trainers" / "prograd.py").is_file():
        parser.error(f"{args.checkout} is not a checkout of BeierZhu/Prompt-align (no ProGrad.public/trainers/prograd.py)")
    module = import_authors_file(args.checkout / "ProGrad.public", "trainers/prograd.py", "authors_prograd")
    if args.speed:
        speed(args.checkout, args.batch, args.runs)
        return 0
    projection = their_projection(args.checkout)
    worst = max(compare(module, projection, *setting) for setting in SETTINGS)
    return verdict(worst, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
