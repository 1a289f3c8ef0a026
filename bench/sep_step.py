"""SEP training step: median time and peak memory, on synthetic tensors and a random CLIP.

Each row runs in its own process, so the peak resident memory (CPU) is that row's alone; on CUDA
the peak allocated memory is reset per row. A step is forward + backward + Adam update, text
features included (computed once per step). CoOp runs through the same harness for reference.

    python bench/sep_step.py                                     # tiny CLIP, CPU, batch 32, 100 classes
    python bench/sep_step.py --preset ViT-B/16 --device cuda --prec fp16 bf16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/cases.py and bench/timing.py

VARIANTS = {  # method and its option fields
    "SEP": ("SEP", {}),
    "SEP OFFICIAL_COMPAT": ("SEP", {"official_compat": True}),
    "SEP per-batch selection": ("SEP", {"visual_selection": "batch"}),
    "SEP LAYERS []": ("SEP", {"layers": []}),
    "CoOp (reference)": ("CoOp", {}),
}


def run_one(spec: dict) -> dict:
    import torch

    from cases import build, classnames, train_step
    from timing import peak_memory_mib, reset_peak_memory, time_ms

    from clipprompt.backbones.precision import resolve_precision
    from clipprompt.backbones.random_clip import build_random_clip

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    precision = resolve_precision(spec["prec"], device)
    torch.manual_seed(0)
    clip = build_random_clip(spec["preset"]).to(device=device, dtype=precision.weight_dtype)
    method, options = VARIANTS[spec["variant"]]
    model = build(method, clip, classnames(spec["classes"]), **options)
    size = clip.visual.input_resolution
    images = torch.randn(spec["batch"], 3, size, size, device=device)
    labels = torch.randint(0, spec["classes"], (spec["batch"],), device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    step = train_step(model, torch.optim.Adam(params, lr=2.5e-3, eps=1e-3), precision, images, labels)

    before = peak_memory_mib("cpu")  # the process's peak resident memory once the model is built
    reset_peak_memory(device)
    timing = time_ms(step, device, spec["steps"], spec["warmup"])
    return {
        "variant": spec["variant"],
        "prec": precision.name,
        "step_ms": timing.median_ms,
        "spread": timing.spread,
        "images_per_s": timing.per_second(spec["batch"]),
        "peak_mb": peak_memory_mib(device),
        "peak_kind": "CUDA allocated" if device.type == "cuda" else "process RSS",
        "rss_before_steps_mb": before,
        "trainable": sum(p.numel() for p in params),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prec", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return

    rows = []
    for prec in args.prec:
        for variant in args.variants:
            spec = {**vars(args), "prec": prec, "variant": variant}
            spec.pop("one"), spec.pop("json"), spec.pop("variants")
            out = subprocess.run(
                [sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True, check=True
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))

    print(f"SEP training step: {args.preset} CLIP on {args.device}, batch {args.batch}, {args.classes} classes, "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    print()
    print("| variant | prec | step ms | spread | images/s | peak MB | MB before steps | trainable params |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['prec']} | {r['step_ms']:.1f} | {r['spread']:.0%} | {r['images_per_s']:.0f} | "
              f"{r['peak_mb']:.0f} | {r['rss_before_steps_mb']:.0f} | {r['trainable']:,} |")
    print()
    print(f"peak MB: {rows[0]['peak_kind']}; on the CPU it includes Python, torch and the CLIP weights, "
          "and 'MB before steps' is the same process's peak once the model was built")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
