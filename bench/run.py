"""Time a training step and evaluation throughput of each method, fast paths on and off.

Synthetic tensors (no data loading), a random CLIP of a real or tiny shape (no download),
median milliseconds per step, images per second and peak memory, as one table in markdown and
JSON. Each exact fast path has a switch so one run prints old and new side by side:

    python bench/run.py --preset tiny --classes 100 --batch 32            # CPU
    python bench/run.py --preset ViT-B/16 --device cuda --prec bf16 --classes 100 1000

bench/sep_step.py and bench/mpl_eval.py study more variants of SEP and MPL.

Variants: `fast` (EOS cut + fused attention + text features once per evaluation) and `slow`
(77-token prompts, CLIP's block forward, text features recomputed for every test batch).
`--loader` adds a `fast+loader` row: evaluation reading real JPEG files through a DataLoader
with the test transform (decode, resize, crop, normalize), to see what data loading costs.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clipprompt._clip import clip_model  # noqa: E402
from clipprompt.data import build_splits  # noqa: E402
from clipprompt.models import MPL, SEP, TCP, CoCoOp, CoOp, KgCoOp, PromptedCLIP, ZeroshotCLIP  # noqa: E402
from clipprompt.models.coop import CoOpOptions  # noqa: E402
from clipprompt.models.kgcoop import KgCoOpOptions  # noqa: E402
from clipprompt.models.tcp import TCPOptions  # noqa: E402
from clipprompt.precision import resolve_precision  # noqa: E402
from clipprompt.random_clip import PRESETS, build_random_clip  # noqa: E402
from clipprompt.testing import make_tiny_dataset  # noqa: E402

ModelFactory = Callable[..., PromptedCLIP]


def _factories() -> dict[str, ModelFactory]:
    """Each method with its paper's prompt sizes; `chunk` bounds image-conditioned text passes."""
    chunked = lambda chunk: {"text_chunk": chunk} if chunk else {}  # noqa: E731
    return {
        "ZeroshotCLIP": lambda clip, names, chunk: ZeroshotCLIP(clip, names),
        "CoOp": lambda clip, names, chunk: CoOp(clip, names, CoOpOptions(n_ctx=16)),
        "CoCoOp": lambda clip, names, chunk: CoCoOp(clip, names, n_ctx=4, **chunked(chunk)),
        "KgCoOp": lambda clip, names, chunk: KgCoOp(clip, names, KgCoOpOptions()),
        "TCP": lambda clip, names, chunk: TCP(clip, names, TCPOptions(layer=min(8, len(clip.transformer.resblocks) - 1))),
        "SEP": lambda clip, names, chunk: _sep(clip, names),
        "MPL": lambda clip, names, chunk: MPL(clip, names, **chunked(chunk)),
    }


def _sep(clip, names) -> SEP:
    """SEP with prototypes set as training would (class means; random features stand in here)."""
    model = SEP(clip, names)
    model.init_prototypes(torch.randn(len(names), clip.text_projection.shape[1], device=model.logit_scale.device))
    return model


@dataclass
class Row:
    method: str
    variant: str
    preset: str
    device: str
    precision: str
    classes: int
    batch: int
    train_ms: float | None
    eval_images_per_s: float
    peak_mem_mib: float


def make_train_step(model: PromptedCLIP, optim: torch.optim.Optimizer, precision, images, labels) -> Callable[[], None]:
    """One training step as the trainers take it: autocast, loss, scaled backward, update."""
    scaler = torch.amp.GradScaler(images.device.type, enabled=precision.uses_grad_scaler)

    def step() -> None:
        model.train()
        with precision.autocast():
            loss, _ = model.loss(images, labels)
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], None], device: torch.device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark


def measure(
    method: str,
    variant: str,
    clip,
    classes: int,
    batch: int,
    eval_batch: int,
    device: torch.device,
    prec: str,
    steps: int,
    warmup: int,
    chunk: int,
    preset: str,
) -> Row:
    fast = variant == "fast"
    names = [f"class {i}" for i in range(classes)]
    model = _factories()[method](clip, names, chunk).to(device).configure(eos_cut=fast, fused=fast)
    precision = resolve_precision(prec, device)
    resolution = clip.visual.input_resolution
    images = torch.randn(batch, 3, resolution, resolution, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    train_ms = None
    if params:
        train_step = make_train_step(model, torch.optim.SGD(params, lr=1e-3), precision, images, labels)
        train_ms = median_ms(train_step, device, steps, warmup)

    test_images = torch.randn(eval_batch, 3, resolution, resolution, device=device)
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

    eval_ms = median_ms(evaluate, device, steps, warmup)
    return Row(method, variant, preset, device.type, precision.name, classes, batch,
               None if train_ms is None else round(train_ms, 2),
               round(2 * eval_batch / (eval_ms / 1000), 1), round(_peak_mib(device), 1))


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
        with torch.no_grad(), precision.autocast(), model.cached_text_features():
            start = time.perf_counter()
            for images, _ in loader:
                model(images.to(device))
            sync(device)
            return len(records) / (time.perf_counter() - start)


def markdown(rows: Sequence[Row]) -> str:
    head = "| method | variant | classes | batch | train ms/step | eval images/s | peak MiB |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        train = "–" if r.train_ms is None else f"{r.train_ms:.1f}"
        lines.append(f"| {r.method} | {r.variant} | {r.classes} | {r.batch} | {train} | {r.eval_images_per_s:.0f} | {r.peak_mem_mib:.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method available")
    parser.add_argument("--variants", nargs="+", default=["fast", "slow"], choices=["fast", "slow"])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--prec", default="fp32", help="fp32, fp16, amp or bf16")
    parser.add_argument("--classes", type=int, nargs="+", default=[100])
    parser.add_argument("--batch", type=int, default=32, help="training batch")
    parser.add_argument("--eval-batch", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=0, help="TEXT_CHUNK of image-conditioned methods")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--loader", action="store_true", help="add a fast+loader row reading JPEG files")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for --loader")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    factories = _factories()
    methods = args.methods or list(factories)
    unknown = sorted(set(methods) - set(factories))
    if unknown:
        parser.error(f"unknown methods {unknown}; available: {', '.join(factories)}")
    clip = build_random_clip(args.preset).to(device)
    if resolve_precision(args.prec, device).weight_dtype == torch.float16:
        clip_model.convert_weights(clip)
    rows = []
    for classes in args.classes:
        for method in methods:
            for variant in args.variants:
                row = measure(method, variant, clip, classes, args.batch, args.eval_batch, device, args.prec,
                              args.steps, args.warmup, args.chunk, args.preset)
                rows.append(row)
                print(f"  {method:12s} {variant:4s} classes={classes}: train {row.train_ms} ms, "
                      f"eval {row.eval_images_per_s} img/s", file=sys.stderr, flush=True)
            if args.loader:
                model = factories[method](clip, [f"class {i}" for i in range(4)], args.chunk).to(device)
                speed = loader_images_per_s(model, args.prec, device, args.eval_batch, args.workers)
                rows.append(Row(method, "fast+loader", args.preset, device.type, args.prec, 4, args.batch,
                                None, round(speed, 1), round(_peak_mib(device), 1)))
    threads = torch.get_num_threads()
    print(f"\n{args.preset} CLIP on {device} ({torch.__version__}, {threads} CPU threads), precision {args.prec}\n")
    print(markdown(rows))
    if device.type == "cpu":
        print("\npeak MiB on the CPU: the process's peak resident memory so far (it only grows row to row);"
              " on CUDA: peak allocated memory of each row.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
