"""PromptKD against the authors' code: the same random teacher and student CLIPs, prompts, projector and batch.

    git clone https://github.com/zhengli97/PromptKD /tmp/promptkd-code
    python bench/compare/promptkd.py /tmp/promptkd-code [--speed]

Their student and teacher are built from their `trainers/promptkd.py` with their fork of CLIP (fp32),
and their loss is their trainer's own `forward_backward`, called on a stand-in trainer (learning rate
0: the gradients without a step). Stubs: their two `load_clip_to_cpu*` (which read ./clip/*.pt)
return their fork over our random weights, `.cuda()` is the identity (this runs on the CPU), and
their projector, which `convert_weights` rounds to fp16, is made fp32 again (their fp16-only code
runs all of it in fp16). Their code hard-codes a 512-wide student embedding and a 768-wide teacher
embedding; depths and image size are ours to shrink. Our teacher is loaded from their teacher's
state dict in their checkpoint format (`teacher_prompts`), as a user's released teacher would be.
Their base-to-novel evaluation scores the base test images against the first half of the teacher's
class features (their "val") and the new ones against the second half (their "test"): ours with
the base and then the new classes. `HALF_PROMPTS True` on the exact path casts as their code does and
must agree (it does, bit for bit); the fast path and our default are shown too. Not run in CI.
"""

from __future__ import annotations

import argparse
import functools
import gc
import math
import types

import torch
from yacs.config import CfgNode as CN

from common import (
    PATHS, SMALL_B16_SHAPE, add_speed_arguments, cpu_only, import_authors_file, rel, report, side_by_side, their_clip,
    verdict,
)

from clipprompt.backbones.random_clip import PRESETS, ClipShape, build_random_clip
from clipprompt.models import PromptKD, PromptKDOptions
from clipprompt.models.promptkd import build_teacher, teacher_prompts

CLASSNAMES = ["dog", "fire_truck", "sea lion", "snowy owl", "hot air balloon", "tram"]
N_CTX, DEPTH_STUDENT, DEPTH_TEACHER, TEMPERATURE, KD_WEIGHT = 4, 3, 3, 2.0, 1000.0
# Their projector maps 512 to 768: a ViT-B/16-wide student and a ViT-L/14-wide teacher, 4 blocks each.
SMALL_L14_SHAPE = ClipShape(embed_dim=768, image_resolution=32, vision_layers=4, vision_width=1024,
                            vision_patch_size=8, context_length=77, vocab_size=49408, transformer_width=768,
                            transformer_heads=12, transformer_layers=4)

# their student's parameter name -> ours
STUDENT_ROLES = {
    "image_encoder.VPT": "visual_ctx",
    **{f"image_encoder.transformer.resblocks.{k + 1}.VPT_shallow": f"deep_visual.{k}" for k in range(DEPTH_STUDENT - 1)},
    **{f"VPT_image_trans.conv1.{i}.{kind}": f"projector.{i}.{kind}" for i in (0, 1, 3) for kind in ("weight", "bias")},
}


def config(resolution: int) -> CN:
    cfg = CN()
    cfg.TRAINER = CN({"NAME": "PromptKD", "MODAL": "base2novel", "PROMPTKD": CN({
        "N_CTX_VISION": N_CTX, "N_CTX_TEXT": N_CTX, "CTX_INIT": "a photo of a", "PREC": "fp32",
        "PROMPT_DEPTH_VISION": DEPTH_STUDENT, "PROMPT_DEPTH_TEXT": DEPTH_STUDENT, "TEACHER_NAME": "ViT-L/14",
        "PROJECT_LAYER": 2, "CE_WEIGHT": 0.0, "KD_WEIGHT": KD_WEIGHT, "TEMPERATURE": TEMPERATURE,
    })})
    cfg.INPUT = CN({"SIZE": (resolution, resolution)})
    cfg.OPTIM = CN({"MAX_EPOCH": 20})
    return cfg


def design(depth: int) -> dict:
    return {"trainer": "IVLP", "vision_depth": depth, "language_depth": depth, "vision_ctx": N_CTX, "language_ctx": N_CTX}


def build_theirs(module, student_state: dict, teacher_state: dict, resolution: int):
    """Their student and teacher (random prompts, moved off their start), and the stand-in trainer."""
    cfg = config(resolution)
    module.load_clip_to_cpu = lambda cfg, zero_shot_model=False: their_clip(module.clip, student_state, design(DEPTH_STUDENT))
    module.load_clip_to_cpu_teacher = lambda cfg, zero_shot_model=False: their_clip(
        module.clip, teacher_state, design(DEPTH_TEACHER))
    with cpu_only():
        student = module.CustomCLIP(cfg, CLASSNAMES, module.load_clip_to_cpu(cfg)).float()
        teacher = module.CustomCLIP_teacher(cfg, CLASSNAMES, module.load_clip_to_cpu_teacher(cfg)).float()
    with torch.no_grad():  # a trained teacher and a student some steps in: every path exercised
        for name, p in teacher.named_parameters():
            if "prompt_learner.ctx" in name or "VPT" in name:
                p.add_(torch.randn_like(p) * 0.1)
        for name, p in student.named_parameters():
            if "VPT" in name:
                p.add_(torch.randn_like(p) * 0.05)
    for name, param in student.named_parameters():  # what their build_model leaves trainable
        param.requires_grad_("VPT" in name)
    teacher.requires_grad_(False).eval()
    assert {n for n, p in student.named_parameters() if p.requires_grad} == set(STUDENT_ROLES)
    trainer = types.SimpleNamespace(
        model=student, model_teacher=teacher, cfg=cfg, scaler=None, batch_idx=0, num_batches=2,
        temperature=TEMPERATURE, device=torch.device("cpu"), update_lr=lambda: None,
        optim=torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.0),
    )
    trainer.parse_batch_train = functools.partial(module.PromptKD.parse_batch_train, trainer)
    trainer.forward_backward = functools.partial(module.PromptKD.forward_backward, trainer)
    return student, teacher, trainer


def their_eval_logits(student, teacher, images) -> tuple[torch.Tensor, torch.Tensor]:
    """Their `test`'s two lines for base-to-novel: (base logits, new logits) of `images`."""
    half = math.ceil(len(CLASSNAMES) / 2)
    with torch.no_grad(), cpu_only():
        _, text, _ = teacher(images)
        features, scale = student(images)
        return scale * features @ text[:half].t(), scale * features @ text[half:].t()


def build_ours(student_shape, student_theirs, teacher_theirs, half: bool, classnames=None,
               teacher_shape: ClipShape = SMALL_L14_SHAPE) -> PromptKD:
    """Ours on the same weights: the teacher from their teacher's state dict, the student's tensors copied."""
    checkpoint = {"state_dict": {k: v.clone() for k, v in teacher_theirs.state_dict().items()}}
    prompts = teacher_prompts(checkpoint, "their teacher")
    teacher = build_teacher(build_random_clip(teacher_shape, seed=1), CLASSNAMES, prompts, "their teacher",
                            half_prompts=half)
    options = PromptKDOptions(teacher_checkpoint="their teacher", n_ctx_vision=N_CTX, prompt_depth_vision=DEPTH_STUDENT,
                              temperature=TEMPERATURE, kd_weight=KD_WEIGHT, half_prompts=half)
    model = PromptKD(build_random_clip(student_shape, seed=0), classnames or CLASSNAMES[:3], options, teacher,
                     CLASSNAMES)
    theirs = dict(student_theirs.named_parameters())
    state = {mine: theirs[their].detach() for their, mine in STUDENT_ROLES.items()}
    bn = student_theirs.VPT_image_trans.conv1[1]
    state.update({"projector.1.running_mean": bn.running_mean, "projector.1.running_var": bn.running_var,
                  "projector.1.num_batches_tracked": bn.num_batches_tracked})
    model.load_trainable_state_dict({k: v.clone() for k, v in state.items()})
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", help="a checkout of github.com/zhengli97/PromptKD")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    add_speed_arguments(parser)
    args = parser.parse_args()
    module = import_authors_file(args.checkout, "trainers/promptkd.py", "authors_promptkd")
    student_shape, resolution = SMALL_B16_SHAPE, SMALL_B16_SHAPE.image_resolution
    student_state = build_random_clip(student_shape, seed=0).state_dict()
    teacher_state = build_random_clip(SMALL_L14_SHAPE, seed=1).state_dict()
    torch.manual_seed(1)
    student, teacher, trainer = build_theirs(module, student_state, teacher_state, resolution)
    bn_start = {k: v.clone() for k, v in student.VPT_image_trans.conv1[1].state_dict().items()}
    torch.manual_seed(2)
    images = torch.randn(4, 3, resolution, resolution)
    batch = {"img": images, "label": torch.tensor([0, 3, 1, 5])}

    student.train()
    with cpu_only():
        their_loss = torch.tensor(trainer.forward_backward(batch)["loss"], dtype=torch.float64)
    their_grads = {name: p.grad.clone() for name, p in student.named_parameters() if p.requires_grad}
    student.VPT_image_trans.conv1[1].load_state_dict(bn_start)  # the training pass moved the running statistics
    student.eval()
    their_base, their_new = their_eval_logits(student, teacher, images)

    faithful = 0.0
    for half in (True, False):
        for path_name, path in PATHS.items():
            ours = build_ours(student_shape, student, teacher, half).configure(**path)
            ours.train()
            loss, terms = ours.loss(images, batch["label"])
            loss.backward()
            # evaluation on fresh copies: the training pass moved BatchNorm's running statistics
            base = build_ours(student_shape, student, teacher, half).configure(**path).eval()
            new = build_ours(student_shape, student, teacher, half, CLASSNAMES[3:]).configure(**path).eval()
            with torch.no_grad(), base.cached_text_features(), new.cached_text_features():
                base_logits, new_logits = base(images), new(images)
            rows = {"loss (KD_WEIGHT · T² · KL)": rel(loss, their_loss),
                    "logits, base classes (their val)": rel(base_logits, their_base),
                    "logits, new classes (their test)": rel(new_logits, their_new)}
            rows.update({f"grad {mine} ({their})": rel(ours.get_parameter(mine).grad, their_grads[their])
                         for their, mine in STUDENT_ROLES.items() if mine != "projector.0.bias"})
            # a bias before BatchNorm (train mode) has a zero gradient up to rounding on both sides: its
            # difference is measured against the size of its layer's weight gradient
            rows["grad projector.0.bias (≈ 0; vs ‖weight grad‖)"] = float(
                (ours.get_parameter("projector.0.bias").grad - their_grads["VPT_image_trans.conv1.0.bias"]).norm()
                / their_grads["VPT_image_trans.conv1.0.weight"].norm())
            title = f"ours, HALF_PROMPTS {half}, {path_name}" + ("" if half else ": differs by the fp16 rounding")
            worst = report(title, rows)
            if half and path_name.startswith("exact"):
                faithful = max(faithful, worst)
    print("\nThe fast path (EOS cut, SDPA) moves the last bits of the features; BatchNorm's backward over the batch "
          "(a difference of nearly equal terms) and the fp16 rounding of the prompts' gradients magnify that in "
          "the gradients before the projector.")
    status = verdict(faithful, args.tolerance, " on the exact path with HALF_PROMPTS True")
    if args.speed:
        speed(module, args.batch, args.runs)
    raise SystemExit(status)


def speed(module, batch_size: int = 4, runs: int = 5) -> None:
    """One training step and one evaluation batch, random ViT-B/16 student and ViT-L/14 teacher, fp32."""
    b16, l14 = PRESETS["ViT-B/16"], PRESETS["ViT-L/14"]
    student_state = build_random_clip(b16, seed=0).state_dict()
    teacher_state = build_random_clip(l14, seed=1).state_dict()
    torch.manual_seed(1)
    student, teacher, trainer = build_theirs(module, student_state, teacher_state, 224)
    del student_state, teacher_state  # a ViT-L/14 twice is memory enough
    gc.collect()
    ours = build_ours(b16, student, teacher, half=False, teacher_shape=l14).configure(eos_cut=True, fused=True)
    optim = torch.optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=0.0)
    images = torch.randn(batch_size, 3, 224, 224)
    batch = {"img": images, "label": torch.zeros(batch_size, dtype=torch.long)}

    def their_train():
        student.train()
        with cpu_only():
            trainer.forward_backward(batch)

    def our_train():
        ours.train()
        loss, _ = ours.loss(images, None)
        optim.zero_grad()
        loss.backward()
        optim.step()

    def their_eval():
        student.eval()
        their_eval_logits(student, teacher, images)

    def our_eval():
        ours.eval()
        with torch.no_grad(), ours.cached_text_features():
            ours(images)

    side_by_side({"train step": (their_train, our_train), "eval batch": (their_eval, our_eval)}, runs=runs)


if __name__ == "__main__":
    main()
