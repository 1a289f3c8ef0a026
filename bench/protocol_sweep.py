"""A tiny whole protocol, serially and on local slots, and evaluation with and without the
frozen-feature cache; plus the wall time of a full base-to-new protocol from per-run costs.

    python bench/protocol_sweep.py sweep [--datasets caltech101 dtd eurosat] [--seeds 1 2] [--slots 2]
    python bench/protocol_sweep.py cache [--images-per-class 40] [--classes 10]
    python bench/protocol_sweep.py estimate --train-ms 15 --class-ms 0.1 --eval-ips 1500 --startup-s 30 --gpus 1 8

`sweep` and `cache` run the real driver and train.py on the tiny CLIP with tiny data in the real
layouts (timings include Python start-up, Dassl and data loading: what a sweep pays per run).
`estimate` needs no data: the per-run costs are arguments, the dataset sizes are the papers'.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # bench/timing.py

from timing import time_ms  # noqa: E402

from clipprompt.data.catalog import CATALOG  # noqa: E402
from clipprompt.results.protocols import BASE2NEW  # noqa: E402

SPEC_OF = {spec.config: spec for spec in CATALOG.values()}
TINY = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "50",
        "OPTIM.MAX_EPOCH", "1"]

# Test images of each base-to-new dataset (CoOp's splits); their classes are the catalog's.
TEST_IMAGES = {"imagenet": 50000, "caltech101": 2465, "oxford_pets": 3669, "stanford_cars": 8041,
               "oxford_flowers": 2463, "food101": 30300, "fgvc_aircraft": 3333, "sun397": 19850, "dtd": 1692,
               "eurosat": 8100, "ucf101": 3783}
assert set(TEST_IMAGES) == set(BASE2NEW), sorted(set(TEST_IMAGES) ^ set(BASE2NEW))


def tiny_setup(root: Path, datasets, classes=6, images_per_class=6) -> str:
    from clipprompt.backbones.random_clip import save_random_clip
    from clipprompt.testing import make_tiny_dataset

    for name in datasets:
        make_tiny_dataset(str(root / "data"), SPEC_OF[name].name, num_classes=classes, images_per_class=images_per_class)
    return save_random_clip(str(root / "tiny_clip.pt"))


def run(command, env) -> None:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def wall_seconds(run_once, runs: int = 1) -> float:
    """Median wall seconds of `runs` calls (bench/timing.py, no warm-up: each call is a whole process)."""
    return time_ms(run_once, "cpu", runs, warmup=0).median_ms / 1000


def sweep(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = tiny_setup(root, args.datasets)
        results = {}
        for label, launcher in (("serial", ["--launcher", "serial"]),
                                (f"local --slots {args.slots}", ["--launcher", "local", "--slots", str(args.slots)])):
            env = {**os.environ, "DATA": str(root / "data"), "OUTPUT": str(root / label.replace(" ", "_")),
                   "SHOTS": "2", "PYTHON": sys.executable, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO),
                   "CLIPPROMPT_FEATURE_CACHE": str(root / "features" / label.replace(" ", "_"))}
            command = [sys.executable, "-m", "clipprompt.protocol", "base2new", args.method, "--datasets",
                       *args.datasets, "--seeds", *map(str, args.seeds), *launcher, "--",
                       "MODEL.BACKBONE.NAME", clip, *TINY]
            results[label] = wall_seconds(lambda: run(command, env))
        runs = 2 * len(args.datasets) * len(args.seeds)
        print("| launcher | runs | wall s | s/run |\n|---|---|---|---|")
        for label, seconds in results.items():
            print(f"| {label} | {runs} | {seconds:.1f} | {seconds / runs:.1f} |")
        first, second = results.values()
        print(f"speed-up: {first / second:.2f}x on {os.cpu_count()} cores")


def cache(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = tiny_setup(root, ["caltech101"], classes=args.classes, images_per_class=args.images_per_class)
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO),
               "CLIPPROMPT_FEATURE_CACHE": str(root / "features")}

        def evaluate(label, *flags, runs=1) -> float:
            """Median seconds of `runs` evaluations, each into its own output folder <label><i>."""
            index = itertools.count()
            return wall_seconds(lambda: run(
                [sys.executable, "train.py", *flags, "--eval-only", "--root", str(root / "data"),
                 "--trainer", "ZeroshotCLIP", "--dataset-config-file", "configs/datasets/caltech101.yaml",
                 "--config-file", "configs/trainers/ZeroshotCLIP/vit_b16.yaml",
                 "--output-dir", str(root / f"{label}{next(index)}"), "MODEL.BACKBONE.NAME", clip, *TINY], env), runs)

        off_s = evaluate("off", "--no-feature-cache", runs=args.repeat)
        cold = evaluate("cold")
        warm_s = evaluate("warm", runs=args.repeat)
        images = json.loads((root / "cold0" / "result.json").read_text())["num_images"]
        print(f"ZeroshotCLIP --eval-only, tiny CLIP (32 px), {images} test images, whole train.py process"
              f" (start-up included), median of {args.repeat}:")
        print(f"| feature cache | wall s |\n|---|---|\n| off | {off_s:.2f} |\n| on, first run (writes) | {cold:.2f} |"
              f"\n| on, later runs (reads) | {warm_s:.2f} |")
        print(f"saved per evaluation: {off_s - warm_s:.2f} s ({1000 * (off_s - warm_s) / images:.1f} ms per test image)")


def estimate(args) -> None:
    """Every run of base-to-new for one method: 11 datasets x seeds x (train on base + evaluate on base,
    evaluate on new). Runs are placed greedily, longest first, each test after its training."""
    runs = []  # (seconds, name, after)
    for name in BASE2NEW:
        base = math.ceil(SPEC_OF[name].num_classes / 2)
        steps = args.epochs * max(1, math.ceil(base * args.shots / args.batch))
        half = TEST_IMAGES[name] / 2
        for seed in args.seeds:
            step_ms = args.train_ms + args.class_ms * base  # the text encoder runs over every base class
            train = args.startup_s + steps * step_ms / 1000 + half / args.eval_ips
            test = args.startup_s + half / args.eval_ips
            runs.append((train, f"{name}/{seed}/train", None))
            runs.append((test, f"{name}/{seed}/test", f"{name}/{seed}/train"))
    total = sum(r[0] for r in runs)
    print(f"{len(runs)} runs, {total / 3600:.2f} GPU-hours of runs (startup {args.startup_s} s, "
          f"{args.train_ms} ms/step + {args.class_ms} ms/class, {args.eval_ips} images/s, {args.epochs} epochs, batch {args.batch})")
    for gpus in args.gpus:
        free = [0.0] * gpus
        done = {}
        for seconds, name, after in sorted(runs, key=lambda r: (r[2] is not None, -r[0])):
            slot = min(range(gpus), key=lambda i: free[i])
            start = max(free[slot], done.get(after, 0.0))
            free[slot] = done[name] = start + seconds
        wall = max(free)
        print(f"{gpus} GPU(s): {wall / 3600:.2f} h wall ({total / wall:.1f}x of one run at a time)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--datasets", nargs="+", default=["caltech101", "dtd", "eurosat"])
    s.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    s.add_argument("--slots", type=int, default=2)
    s.add_argument("--method", default="coop")
    c = sub.add_parser("cache")
    c.add_argument("--classes", type=int, default=10)
    c.add_argument("--images-per-class", type=int, default=100)
    c.add_argument("--repeat", type=int, default=3)
    e = sub.add_parser("estimate")
    e.add_argument("--train-ms", type=float, required=True, help="one training step, without the class part")
    e.add_argument("--class-ms", type=float, default=0.0, help="added to a step per trained class (text encoder)")
    e.add_argument("--eval-ips", type=float, required=True, help="evaluation images per second")
    e.add_argument("--startup-s", type=float, default=25.0, help="per run: process start, data, model load")
    e.add_argument("--epochs", type=int, default=50)
    e.add_argument("--shots", type=int, default=16)
    e.add_argument("--batch", type=int, default=32)
    e.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    e.add_argument("--gpus", nargs="+", type=int, default=[1, 8])
    args = parser.parse_args(argv)
    {"sweep": sweep, "cache": cache, "estimate": estimate}[args.command](args)


if __name__ == "__main__":
    main()
