"""MPL evaluation throughput (images/s): class count × EOS cut × chunking of the text passes.

MPL runs the text encoder once per (image, class) pair, so evaluation cost grows with the class
count. Two things keep it down without changing any value: cutting the prompts after the class
list's longest EOS (exact, the text encoder being causal; "full" is the 77-token pass,
`configure(eos_cut=False)`), and chunking the pairs (TEXT_CHUNK), which bounds memory.

    python bench/mpl_eval.py                                   # tiny CLIP on the CPU
    python bench/mpl_eval.py --preset ViT-B/16 --device cuda --batch 100 --prec fp16

Each configuration runs in its own process (forked on the CPU), so the memory column is that
configuration's own peak: RSS growth on the CPU, peak allocated memory on CUDA.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/cases.py and bench/timing.py

from cases import build  # noqa: E402
from timing import peak_memory_mib, reset_peak_memory, time_ms  # noqa: E402

from clipprompt.backbones.random_clip import build_random_clip  # noqa: E402

ADJECTIVES = (
    "red", "small", "wild", "spotted", "golden", "striped", "black", "giant", "common", "grey",
    "snowy", "american", "european", "royal", "long-tailed", "tiger", "sea", "desert", "mountain", "water",
)
NOUNS = (
    "fox", "owl", "lantern", "piano", "frog", "snail", "balloon", "truck", "bell", "leaf",
    "shark", "beetle", "violin", "teapot", "canoe", "cathedral", "mushroom", "parrot", "scooter", "anemone",
    "tractor", "lighthouse", "hamster", "pretzel", "umbrella",
)


def classnames(n: int) -> list[str]:
    """n distinct ImageNet-like names of 1 to 4 words."""
    names = [f"{a} {b}" for a in ADJECTIVES for b in NOUNS] + list(NOUNS)
    names += [f"{a} {c} {b}" for a in ADJECTIVES[:10] for c in ADJECTIVES[10:] for b in NOUNS]
    return names[:n]


def run(preset, device, n_cls, batch, cut, chunk, repeats, prec, threads, queue) -> None:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    clip = build_random_clip(preset).to(device)
    if prec == "fp16":
        clip = clip.half()
    model = build("MPL", clip, classnames(n_cls), text_chunk=chunk).eval()  # chunk 0: all pairs at once
    model.configure(eos_cut=cut)
    size = clip.visual.input_resolution
    images = torch.randn(batch, 3, size, size, device=device)
    autocast = torch.autocast(device, dtype=torch.float16, enabled=prec == "fp16")
    rss_before = peak_memory_mib("cpu")
    reset_peak_memory(device)
    with torch.no_grad(), autocast:
        timing = time_ms(lambda: model(images), device, repeats, warmup=1)
    memory = peak_memory_mib(device)
    if device != "cuda":
        memory -= rss_before  # the RSS growth of this configuration
    queue.put((timing.per_second(batch), timing.spread, model.prompts.length, memory))


def measure(*args) -> tuple[float, float, int, float]:
    ctx = mp.get_context("fork" if args[1] == "cpu" else "spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=run, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="random CLIP shape: tiny, ViT-B/16, ...")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--batch", type=int, default=4, help="images per evaluation batch")
    parser.add_argument("--chunk", type=int, default=256, help="TEXT_CHUNK of the chunked runs")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per configuration (the median counts)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--prec", default="fp32", choices=["fp32", "fp16"], help="fp16: CUDA only")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"MPL evaluation, random {args.preset} CLIP on {args.device} ({args.prec}, "
          f"{torch.get_num_threads()} threads), batch {args.batch}, median of {args.repeats} timed batches after 1 warm-up")
    memory = "peak alloc MiB" if args.device == "cuda" else "RSS growth MiB"
    print(f"| classes | prompt tokens | chunk | images/s | spread | {memory} | speed-up of the cut |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n_cls in args.classes:
        results = {}
        for cut in (True, False):
            for chunk in (args.chunk, 0):
                results[cut, chunk] = measure(
                    args.preset, args.device, n_cls, args.batch, cut, chunk, args.repeats, args.prec, args.threads
                )
        for cut in (True, False):
            for chunk in (args.chunk, 0):
                rate, spread, length, mem = results[cut, chunk]
                kind = f"cut ({length})" if cut else f"full ({length})"
                gain = f"{rate / results[False, chunk][0]:.1f}x" if cut else ""
                chunk_text = str(chunk) if chunk else "off"
                print(f"| {n_cls} | {kind} | {chunk_text} | {rate:,.1f} | {spread:.0%} | {mem:,.0f} | {gain} |")


if __name__ == "__main__":
    main()
