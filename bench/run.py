"""Time a training step and evaluation throughput of each method, fast paths on and off.

Synthetic tensors (no data loading), a random CLIP of a real or tiny shape (no download),
median milliseconds per step, images per second and peak memory, as one table in markdown and
JSON. Each exact fast path has a switch so one run prints old and new side by side:

    python bench/run.py --preset tiny --classes 100 --batch 32            # CPU
    python bench/run.py --preset ViT-B/16 --device cuda --prec bf16 --classes 100 1000

bench/sep_step.py and bench/mpl_eval.py study more variants of SEP and MPL. All three build the
methods with bench/cases.py and time them with bench/timing.py (warm-up, median, spread).

With its defaults (tiny CLIP, 100 and 1,000 classes) this prints README's performance table;
image-conditioned methods (CoCoOp, MPL) take smaller batches and fewer timed steps, and skip the
slow path above 100 classes (minutes per step).

Variants: `fast` (EOS cut + fused attention + text features once per evaluation) and `slow`
(77-token prompts, CLIP's block forward, text features recomputed for every test batch).
`--loader` adds a `fast+loader` row: evaluation reading real JPEG files through a DataLoader
with the test transform (decode, resize, crop, normalize), to see what data loading costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from cases import IMAGE_CONDITIONED, METHODS, build, classnames, train_step
from timing import Timing, peak_memory_mib, reset_peak_memory, time_ms

from clipprompt.backbones._clip import clip_model
from clipprompt.data import build_splits
from clipprompt.models import PromptedCLIP
from clipprompt.backbones.precision import resolve_precision
from clipprompt.backbones.random_clip import PRESETS, build_random_clip
from clipprompt.testing import make_tiny_dataset


@dataclass
class Row:
    method: str
    variant: str
    preset: str
    device: str
    precision: str
    classes: int
    batch: int
    eval_batch: int
    train_ms: float | None
    train_spread: float | None
    eval_images_per_s: float
    eval_spread: float
    peak_mem_mib: float


@dataclass
class Sizes:
    """Batches and timed runs of one method (image-conditioned methods take smaller ones)."""

    batch: int
    eval_batch: int
    steps: int


def measure(method: str, variant: str, clip, classes: int, sizes: Sizes, device: torch.device, prec: str,
            warmup: int, chunk: int, preset: str) -> Row:
    fast = variant == "fast"
    model = build(method, clip, classnames(classes), chunk).configure(eos_cut=fast, fused=fast)
    precision = resolve_precision(prec, device)
    resolution = clip.visual.input_resolution
    images = torch.randn(sizes.batch, 3, resolution, resolution, device=device)
    labels = torch.randint(0, classes, (sizes.batch,), device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    reset_peak_memory(device)

    train: Timing | None = None
    if params:
        train = time_ms(train_step(model, torch.optim.SGD(params, lr=1e-3), precision, images, labels),
                        device, sizes.steps, warmup)

    test_images = torch.randn(sizes.eval_batch, 3, resolution, resolution, device=device)
    model.eval()

    @torch.no_grad()
    def evaluate() -> None:
        """Two test batches: the fast path computes class text features once for both."""
        with precision.autocast():
            if fast:
                with model.cached_text_features():
                    model(test_images), model(test_images)
            else:
                model(test_images), model(test_images)

    evaluation = time_ms(evaluate, device, sizes.steps, warmup)
    return Row(method, variant, preset, device.type, precision.name, classes, sizes.batch, sizes.eval_batch,
               None if train is None else round(train.median_ms, 2),
               None if train is None else round(train.spread, 3),
               round(evaluation.per_second(2 * sizes.eval_batch), 1), round(evaluation.spread, 3),
               round(peak_memory_mib(device), 1))


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, records, transform):
        self.records, self.transform = records, transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        from PIL import Image

        record = self.records[index]
        return self.transform(Image.open(record.impath).convert("RGB")), record.label


def loader_images_per_s(model: PromptedCLIP, prec: str, device: torch.device, batch: int, workers: int) -> float:
    """One evaluation pass over JPEG files on disk, text features computed once."""
    import tempfile

    from torchvision import transforms as T

    resolution = model.image_encoder.input_resolution
    precision = resolve_precision(prec, device)
    transform = T.Compose([
        T.Resize(resolution, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(resolution), T.ToTensor(),
        T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    with tempfile.TemporaryDirectory() as root:
        per_class = max(2, (2 * batch) // 4)
        make_tiny_dataset(root, "Caltech101", num_classes=4, images_per_class=per_class * 2, image_size=resolution)
        records = build_splits("Caltech101", root)["test"]
        loader = torch.utils.data.DataLoader(_ImageFiles(records, transform), batch_size=batch, num_workers=workers)
        model.eval()

        def one_pass() -> None:
            for images, _ in loader:
                model(images.to(device))

        with torch.no_grad(), precision.autocast(), model.cached_text_features():
            return time_ms(one_pass, device, runs=1, warmup=0).per_second(len(records))


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def markdown(rows: Sequence[Row]) -> str:
    """README's layout: one line per method and class count, fast and slow side by side."""
    lines = [
        "| method | classes | batch | train ms/step fast | slow | eval images/s fast | slow | spread |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r.method, r.classes) for r in rows if r.variant in ("fast", "slow"))
    for method, classes in keys:
        by_variant = {r.variant: r for r in rows if (r.method, r.classes) == (method, classes)}
        fast, slow = by_variant.get("fast"), by_variant.get("slow")
        any_row = fast or slow
        spreads = [x for r in (fast, slow) if r for x in (r.train_spread, r.eval_spread) if x is not None]
        batch = "–" if any_row.train_ms is None else str(any_row.batch)
        lines.append(
            f"| {method} | {classes} | {batch} | {fmt(fast and fast.train_ms)} | {fmt(slow and slow.train_ms)} "
            f"| {fmt(fast and fast.eval_images_per_s)} | {fmt(slow and slow.eval_images_per_s)} "
            f"| {max(spreads):.0%} |"
        )
    loader = [r for r in rows if r.variant == "fast+loader"]
    if loader:
        lines.append("")
        lines.append("Reading JPEG files through a DataLoader (fast path): " + ", ".join(
            f"{r.method} {r.eval_images_per_s:,.0f} images/s" for r in loader))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--variants", nargs="+", default=["fast", "slow"], choices=["fast", "slow"])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--prec", default="fp32", help="fp32, fp16, amp or bf16")
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--batch", type=int, default=32, help="training batch")
    parser.add_argument("--eval-batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=3, help="timed runs of each measurement (the median counts)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--conditioned-batch", type=int, default=4, help="training batch of CoCoOp and MPL")
    parser.add_argument("--conditioned-eval-batch", type=int, default=20)
    parser.add_argument("--conditioned-steps", type=int, default=3)
    parser.add_argument("--conditioned-slow-max-classes", type=int, default=100,
                        help="CoCoOp and MPL skip the slow path above this class count")
    parser.add_argument("--chunk", type=int, default=0, help="TEXT_CHUNK of image-conditioned methods (0: default)")
    parser.add_argument("--loader", action="store_true", help="add a fast+loader row reading JPEG files")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for --loader")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    clip = build_random_clip(args.preset).to(device)
    precision = resolve_precision(args.prec, device)
    if precision.fallback:
        print(f"Note: {precision.fallback}")
    if precision.weight_dtype == torch.float16:
        clip_model.convert_weights(clip)
    started = time.perf_counter()
    rows = []
    for classes in args.classes:
        for method in args.methods:
            conditioned = method in IMAGE_CONDITIONED
            sizes = (Sizes(args.conditioned_batch, args.conditioned_eval_batch, args.conditioned_steps) if conditioned
                     else Sizes(args.batch, args.eval_batch, args.steps))
            for variant in args.variants:
                if variant == "slow" and conditioned and classes > args.conditioned_slow_max_classes:
                    continue
                row = measure(method, variant, clip, classes, sizes, device, args.prec, args.warmup, args.chunk,
                              args.preset)
                rows.append(row)
                print(f"  {method:12s} {variant:4s} classes={classes}: train {row.train_ms} ms, "
                      f"eval {row.eval_images_per_s} img/s", file=sys.stderr, flush=True)
            if args.loader:
                model = build(method, clip, classnames(4), args.chunk)
                speed = loader_images_per_s(model, args.prec, device, sizes.eval_batch, args.workers)
                rows.append(Row(method, "fast+loader", args.preset, device.type, args.prec, 4, sizes.batch,
                                sizes.eval_batch, None, None, round(speed, 1), 0.0, round(peak_memory_mib(device), 1)))
    threads = torch.get_num_threads()
    print(f"\n{args.preset} CLIP on {device} ({torch.__version__}, {threads} CPU threads), precision {args.prec}, "
          f"median of {args.steps} runs ({args.conditioned_steps} for CoCoOp and MPL) after {args.warmup} warm-up; "
          f"{time.perf_counter() - started:.0f} s in all\n")
    print(markdown(rows))
    print("\nspread: (max - min) / median of the row's timed runs, the largest of its cells.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
