"""What every fidelity comparison shares: the authors' module loaded beside ours, their CLIP, the diffs.

Each authors' repository ships its own fork of CLIP and imports it as `clip`, the name of the
package we use too. `import_authors_file` imports one of their files with their checkout's `clip`
in place and puts ours back afterwards (the imported module keeps its references to their fork);
`their_clip` gives their fork's CLIP our random weights in fp32, and `cpu_only` makes `.cuda()` a
no-op so their code runs on the CPU. Nothing of their code is stored here: the scripts take the
path of a checkout.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from yacs.config import CfgNode as CN

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clipprompt.backbones.random_clip import PRESETS, ClipShape  # noqa: E402  (binds our clip first)

# MaPLe's and PromptSRC's code hard-codes a 512-wide text encoder and a 768-wide image encoder;
# depth and input size are ours to shrink so the comparison runs on a CPU in seconds.
WIDE_SHAPE = ClipShape(embed_dim=64, image_resolution=32, vision_layers=4, vision_width=768, vision_patch_size=16,
                       context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                       transformer_layers=4)

# SEP's code hard-codes ViT-B/16's widths (512 text, 768 image, 512 embedding); 4 blocks each and
# 32-px images in 8-px patches keep it small.
SMALL_B16_SHAPE = ClipShape(embed_dim=512, image_resolution=32, vision_layers=4, vision_width=768,
                            vision_patch_size=8, context_length=77, vocab_size=49408, transformer_width=512,
                            transformer_heads=8, transformer_layers=4)

# `--preset` of the scripts: "wide", "small-b16" or one of the random CLIP presets (ViT-B/16: the published sizes).
SHAPES: dict[str, ClipShape] = {"wide": WIDE_SHAPE, "small-b16": SMALL_B16_SHAPE, **PRESETS}


def add_preset_argument(parser, default: str = "tiny") -> None:
    parser.add_argument("--preset", default=default, choices=sorted(SHAPES),
                        help=f"random CLIP shape (default {default}; ViT-B/16: the published sizes)")


# Our two text paths: the exact slow one and the default fast one.
PATHS = {
    "exact (eos_cut=False, fused=False)": dict(eos_cut=False, fused=False),
    "fast (default)": dict(eos_cut=True, fused=True),
}


def _clip_modules() -> dict:
    return {name: module for name, module in sys.modules.items() if name == "clip" or name.startswith("clip.")}


def import_authors_file(checkout: Path | str, relative_path: str, module_name: str) -> types.ModuleType:
    """Import `<checkout>/<relative_path>` with the checkout's own `clip` package, then restore ours.

    The file is imported inside a package `<module_name>_pkg` over its folder, so its relative
    imports (`from .imagenet_templates import ...`, TCP's `.clip_text`) work without running that
    folder's __init__ (which imports every trainer).
    """
    path = Path(checkout) / relative_path
    if not path.is_file():
        print(f"error: {checkout} is not the checkout this script compares with: {relative_path} is missing there",
              file=sys.stderr)
        raise SystemExit(2)
    checkout = str(checkout)
    ours = _clip_modules()
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, checkout)
    package = types.ModuleType(f"{module_name}_pkg")
    package.__path__ = [str(path.parent)]
    sys.modules[package.__name__] = package
    try:
        spec = importlib.util.spec_from_file_location(f"{package.__name__}.{path.stem}", str(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(checkout)
        for name in _clip_modules():
            del sys.modules[name]
        sys.modules.update(ours)
    return module


@contextlib.contextmanager
def cpu_only() -> Iterator[None]:
    """`.cuda()` on modules and tensors returns them unchanged (their code moves things to the GPU)."""
    module_cuda, tensor_cuda = nn.Module.cuda, torch.Tensor.cuda
    nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        nn.Module.cuda, torch.Tensor.cuda = module_cuda, tensor_cuda


def their_clip(clip_module, state: Mapping[str, torch.Tensor], design_details: dict | None = None) -> nn.Module:
    """Their fork's CLIP (`clip_module`: the `clip` their trainer imported) with `state`'s fp32 weights.

    Their `build_model` rounds to fp16, so the exact weights are loaded again; only the prompt
    parameters a `design_details` adds to their CLIP may be missing from `state`.
    """
    extra = () if design_details is None else (design_details,)
    model = clip_module.build_model(copy.deepcopy(dict(state)), *extra).float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert design_details is not None or not missing, missing
    return model.eval()


def their_custom_clip(module, cfg: CN, classnames: list[str], state: Mapping[str, torch.Tensor],
                      learnable: str, *extra_args) -> nn.Module:
    """Their `CustomCLIP` (CoOp's family) on their CLIP with `state`'s weights, built on the CPU.

    Their `load_clip_to_cpu` (a download, called for the hand-crafted features) returns the same
    CLIP; as their trainer does, only parameters whose name contains `learnable` train.
    """
    module.load_clip_to_cpu = lambda cfg: their_clip(module.clip, state)
    with cpu_only():
        model = module.CustomCLIP(cfg, classnames, their_clip(module.clip, state), *extra_args)
    for name, param in model.named_parameters():
        param.requires_grad_(learnable in name)
    return model


def dassl_like_cfg(node: Mapping, dataset: str, resolution: int) -> CN:
    """The few keys their model code reads."""
    cfg = CN(new_allowed=True)
    cfg.TRAINER = CN(new_allowed=True)
    for name, values in node.items():
        cfg.TRAINER[name] = CN(dict(values))
    cfg.INPUT = CN({"SIZE": (resolution, resolution)})
    cfg.DATASET = CN({"NAME": dataset})
    cfg.MODEL = CN({"BACKBONE": CN({"NAME": "random"})})
    return cfg


def loss_terms_and_logits(model, images: torch.Tensor, labels: torch.Tensor,
                          as_trainer: bool = False) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """Our training loss, backpropagated into fresh gradients, its logged terms, and the logits without autograd.

    `as_trainer`: the loss in train mode and the logits in eval mode, as a trainer runs them (CLIP's
    attention takes another kernel for frozen passes without autograd in eval mode).
    """
    model.zero_grad()
    if as_trainer:
        model.train()
    loss, terms = model.loss(images, labels)
    loss.backward()
    if as_trainer:
        model.eval()
    with torch.no_grad():
        logits = model(images)
    return loss.detach(), terms, logits


def loss_and_logits(model, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`loss_terms_and_logits` without the terms."""
    loss, _, logits = loss_terms_and_logits(model, images, labels)
    return loss, logits


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative difference ||a - b|| / ||b|| (0 when both are 0)."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def report(title: str, rows: Mapping[str, float]) -> float:
    """Print one table of relative differences; returns the largest."""
    worst = max(rows.values())
    width = max(28, *map(len, rows))
    print(f"\n{title}")
    for name, value in rows.items():
        print(f"  {name:<{width}} {value:.2e}")
    print(f"  {'max':<{width}} {worst:.2e}")
    return worst


def verdict(worst: float, tolerance: float, scope: str = "") -> int:
    """Print MATCH or MISMATCH for the largest relative difference that counts; the exit status."""
    match = worst < tolerance
    print(f"\n{'MATCH' if match else 'MISMATCH'}: largest relative difference{scope} {worst:.2e} "
          f"(tolerance {tolerance:.0e})")
    return 0 if match else 1


def add_speed_arguments(parser) -> None:
    """`--speed` (instead of the comparison: time theirs and ours side by side), `--batch`, `--runs`."""
    parser.add_argument("--speed", action="store_true",
                        help="instead: time one training step and one evaluation batch, theirs and ours (fast path), "
                             "side by side on a random ViT-B/16 in fp32, and estimate one base-to-new dataset")
    parser.add_argument("--batch", type=int, default=4, help="with --speed: images per timed step (default 4)")
    parser.add_argument("--runs", type=int, default=5, help="with --speed: interleaved timed runs (default 5)")


@dataclass(frozen=True)
class SideBySide:
    """One step timed both ways: medians in seconds, authors' / ours by the medians and by the fastest runs."""

    theirs: float
    ours: float
    ratio: float
    fastest_ratio: float


def side_by_side(steps: Mapping[str, tuple[Callable[[], object], Callable[[], object]]], runs: int = 5,
                 warmup: int = 1) -> dict[str, SideBySide]:
    """Time each (theirs, ours) pair of callables interleaved, who goes first alternating by round (so
    load from other jobs hits both), after `warmup` runs of each; print the medians and the ratios
    authors' time / ours (above 1: ours is faster) by the medians and by the fastest runs."""
    print(f"\nspeed: median of {runs} interleaved runs after {warmup} warm-up, {torch.get_num_threads()} threads "
          "(authors' time / ours; above 1: ours is faster)")
    out = {}
    for name, pair in steps.items():
        for _ in range(warmup):
            for step in pair:
                step()
        times: tuple[list[float], list[float]] = ([], [])
        for round_ in range(runs):
            order = (0, 1) if round_ % 2 == 0 else (1, 0)
            for side in order:
                start = time.perf_counter()
                pair[side]()
                times[side].append(time.perf_counter() - start)
        theirs, ours = (statistics.median(spent) for spent in times)
        out[name] = SideBySide(theirs, ours, theirs / ours, min(times[0]) / min(times[1]))
        print(f"  {name:<16} authors {theirs * 1e3:9.1f} ms   ours {ours * 1e3:9.1f} ms   ratio {out[name].ratio:.2f}"
              f"   (fastest runs {out[name].fastest_ratio:.2f})")
    return out


# ---- speed beside the authors' code: one training step, one evaluation batch, one whole dataset ----

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ReferenceDataset:
    """The dataset whose one base-to-new run (training on the base classes, testing on base and new) is estimated."""

    name: str
    classes: int
    shots: int
    test_images: int  # CoOp's split: every test image is in the base or the new half

    @property
    def base_classes(self) -> int:
        return (self.classes + 1) // 2  # Dassl's subsample_classes: the first ceil(n / 2) labels

    @property
    def base_train_images(self) -> int:
        return self.base_classes * self.shots


# Caltech101 in CoOp's split (split_zhou_Caltech101.json): 100 classes, 2,465 test images; 16 shots.
CALTECH101 = ReferenceDataset("Caltech101", classes=100, shots=16, test_images=2465)


@dataclass(frozen=True)
class Schedule:
    """A config's training schedule: Dassl drops the last incomplete batch, so an epoch is ⌊images / batch⌋ steps."""

    config: str
    batch_size: int
    epochs: int

    def steps(self, dataset: ReferenceDataset = CALTECH101) -> int:
        return dataset.base_train_images // self.batch_size * self.epochs

    def images_trained(self, dataset: ReferenceDataset = CALTECH101) -> int:
        return self.steps(dataset) * self.batch_size


def schedule(trainer: str, config: str) -> Schedule:
    """Batch size and epochs of `configs/trainers/<trainer>/<config>.yaml`, our copy of the authors' config."""
    path = REPO / "configs" / "trainers" / trainer / f"{config}.yaml"
    node = CN.load_cfg(path.read_text())
    return Schedule(f"{trainer}/{config}", int(node.DATALOADER.TRAIN_X.BATCH_SIZE), int(node.OPTIM.MAX_EPOCH))


def base_to_new_hours(plan: Schedule, train: SideBySide, evaluation: SideBySide, batch: int,
                      dataset: ReferenceDataset = CALTECH101) -> dict[str, tuple[float, float]]:
    """(low, high) hours of one base-to-new run per side, from the median times at `batch` images.

    Evaluation: the test images (base and new) at the timed per-image cost. Training: the schedule's
    steps, each costing what the timed step cost per image times the config's batch (as if all the
    work grew with the batch) or what the timed step cost as a whole (as if none did: the class text
    pass of CoOp's family does not grow with it); the truth lies between. Where the config's batch
    is the timed one, both are the same number."""
    hours = {}
    for side in ("theirs", "ours"):
        step, image = getattr(train, side), getattr(evaluation, side) / batch
        per_image = plan.images_trained(dataset) * step / batch
        per_step = plan.steps(dataset) * step
        testing = dataset.test_images * image
        hours[side] = tuple((min(per_image, per_step) + testing, max(per_image, per_step) + testing))
        hours[side] = tuple(value / 3600 for value in hours[side])
    return hours


def hours_text(low_high: tuple[float, float]) -> str:
    low, high = low_high
    return f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}–{high:.1f}"


@dataclass(frozen=True)
class Speed:
    """One method timed beside its authors' code, and the estimated hours of one base-to-new run."""

    method: str
    plan: Schedule
    batch: int
    train: SideBySide
    evaluation: SideBySide
    hours: dict[str, tuple[float, float]]


def speed_classes(count: int = CALTECH101.base_classes) -> list[str]:
    """Class names for the timed steps: as many as the reference dataset's base classes."""
    return [f"class number {i}" for i in range(count)]


def speed_batch(batch: int, classes: int, resolution: int = 224) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 3, resolution, resolution, generator=generator),
            torch.randint(0, classes, (batch,), generator=generator))


def train_step(model: nn.Module, loss: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """One training step: train mode, fresh gradients, `loss()` backpropagated."""
    def step() -> None:
        model.train()
        model.zero_grad()
        loss().backward()
    return step


def eval_step(model: nn.Module, forward: Callable[[], object]) -> Callable[[], None]:
    """One evaluation batch: eval mode, no autograd."""
    def step() -> None:
        model.eval()
        with torch.no_grad():
            forward()
    return step


def time_method(method: str, plan: Schedule, ours, their_train: Callable[[], object], their_eval: Callable[[], object],
                images: torch.Tensor, labels: torch.Tensor, runs: int = 5) -> Speed:
    """Time their training step and evaluation batch beside ours, print the ratios and the estimate.

    Ours runs on the fast path as our trainer runs it: `loss` backpropagated, and at evaluation
    the class text features computed once per test set (outside the timing), as the trainer does;
    theirs as their trainer runs them (`cpu_only`: their `.cuda()` is a no-op)."""
    ours.configure(**PATHS["fast (default)"])
    print(f"\n{method}: random CLIP, fp32, CPU, batch {len(images)}")
    with cpu_only():
        train = side_by_side({"training step": (their_train, train_step(ours, lambda: ours.loss(images, labels)[0]))},
                             runs=runs)["training step"]
        ours.eval()
        with ours.cached_text_features():
            evaluation = side_by_side({"evaluation": (their_eval, eval_step(ours, lambda: ours(images)))},
                                      runs=runs)["evaluation"]
    hours = base_to_new_hours(plan, train, evaluation, len(images))
    print(f"  one base-to-new run on {CALTECH101.name} ({plan.config}: {plan.steps()} steps of {plan.batch_size}, "
          f"{CALTECH101.test_images} test images), from the medians at batch {len(images)}: "
          f"authors {hours_text(hours['theirs'])} h, ours {hours_text(hours['ours'])} h")
    return Speed(method, plan, len(images), train, evaluation, hours)
