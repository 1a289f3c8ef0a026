"""Every method's speed beside its authors' code, in one table: ratios and the estimated hours of one base-to-new run.

    python bench/compare/speed.py --codes /tmp/codes            # /tmp/codes/<checkout> for each name below
    python bench/compare/speed.py --code coop=/tmp/coop-code --code mpl=/tmp/mpl-code [--methods CoOp MaPLe]

Each method's `bench/compare/<script>.py` `speed(checkout, batch, runs)` builds the authors' model from
their checkout and ours from the same random ViT-B/16 weights (fp32, CPU, 50 classes, one batch), times
one training step and one evaluation batch interleaved (`common.time_method`) and estimates one
base-to-new run on Caltech101 from the per-image medians. Methods whose checkout is not given are
listed as not run; a method whose timing fails is listed with its error (the exit status is then 1).
`--json FILE` writes each result as it comes (a long run keeps what it measured).
Adding a method is one line of CASES.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import common

from clipprompt.errors import UserError


@dataclass(frozen=True)
class Case:
    """A method's comparison script, the checkout it needs (a name for --code / a folder of --codes), its keywords."""

    script: str
    checkout: str
    keywords: dict = field(default_factory=dict)


CASES = {
    "CoOp": Case("coop", "coop"),
    "CoCoOp": Case("cocoop", "coop"),
    "KgCoOp": Case("kgcoop", "kgcoop"),
    "ProGrad": Case("prograd", "prograd"),
    "TCP": Case("tcp", "tcp"),
    "SEP": Case("sep", "sep"),
    "VPT": Case("ivlp", "mpl", {"method": "VPT"}),
    "IVLP": Case("ivlp", "mpl", {"method": "IVLP"}),
    "MaPLe": Case("maple", "mpl"),
    "PromptSRC": Case("promptsrc", "promptsrc"),
    "MMA": Case("mma", "mma"),
    "MMRL": Case("mmrl", "mmrl"),
    "MMRLpp": Case("mmrl", "mmrl", {"method": "MMRLpp"}),
    "CoOp_DePT": Case("dept", "dept", {"base": "CoOp"}),
    "CoCoOp_DePT": Case("dept", "dept", {"base": "CoCoOp"}),
    "KgCoOp_DePT": Case("dept", "dept", {"base": "KgCoOp"}),
    "MaPLe_DePT": Case("dept", "dept", {"base": "MaPLe"}),
}

# Where each checkout comes from (for the messages; clone them anywhere).
REPOSITORIES = {
    "coop": "KaiyangZhou/CoOp", "kgcoop": "htyao89/KgCoOp", "prograd": "BeierZhu/Prompt-align",
    "tcp": "htyao89/Textual-based_Class-aware_prompt_tuning", "sep": "htyao89/SEP",
    "mpl": "muzairkhattak/multimodal-prompt-learning", "promptsrc": "muzairkhattak/PromptSRC",
    "mma": "ZjjConan/Multi-Modal-Adapter", "mmrl": "yunncheng/MMRL", "dept": "Koorye/DePT",
}

HEADER = ("| method | train: authors / ours, median | fastest | eval: authors / ours, median | fastest "
          "| one base-to-new run (h): authors | ours |")


def row(method: str, result: common.Speed | str | None) -> str:
    if result is None:
        return f"| {method} | not run (no checkout) | | | | | |"
    if isinstance(result, str):
        return f"| {method} | failed: {result} | | | | | |"
    return (f"| {method} | {result.train.ratio:.2f} | {result.train.fastest_ratio:.2f} | {result.evaluation.ratio:.2f} "
            f"| {result.evaluation.fastest_ratio:.2f} | {common.hours_text(result.hours['theirs'])} "
            f"| {common.hours_text(result.hours['ours'])} |")


def table(results: dict[str, common.Speed | str | None]) -> str:
    """The markdown table of every method asked for, in CASES's order."""
    return "\n".join([HEADER, "|---|---|---|---|---|---|---|", *(row(m, r) for m, r in results.items())])


def checkouts(pairs: list[str], folder: Path | None) -> dict[str, Path]:
    """name -> checkout path from `--code name=path` and `--codes folder` (folder/name where it exists)."""
    found = {}
    if folder is not None:
        if not folder.is_dir():
            raise UserError(f"--codes {folder}: no such folder")
        found = {name: folder / name for name in REPOSITORIES if (folder / name).is_dir()}
    for pair in pairs:
        name, _, path = pair.partition("=")
        if name not in REPOSITORIES or not path:
            raise UserError(f"--code {pair}: expected NAME=PATH with NAME one of {', '.join(REPOSITORIES)}")
        found[name] = Path(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", action="append", default=[], metavar="NAME=PATH",
                        help="a checkout: " + ", ".join(f"{k} ({v})" for k, v in REPOSITORIES.items()))
    parser.add_argument("--codes", type=Path, help="a folder holding checkouts named as for --code")
    parser.add_argument("--methods", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--batch", type=int, default=4, help="images per timed step (default 4)")
    parser.add_argument("--runs", type=int, default=5, help="interleaved timed runs (default 5)")
    parser.add_argument("--json", type=Path, help="write the results here, each as it comes")
    args = parser.parse_args(argv)
    try:
        found = checkouts(args.code, args.codes)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results: dict[str, common.Speed | str | None] = {}
    for method in args.methods:
        case = CASES[method]
        if case.checkout not in found:
            print(f"\n{method}: not run, no checkout of {REPOSITORIES[case.checkout]} (--code {case.checkout}=PATH)")
            results[method] = None
        else:
            script = importlib.import_module(case.script)
            try:
                results[method] = script.speed(found[case.checkout], batch=args.batch, runs=args.runs, **case.keywords)
            except Exception as error:  # noqa: BLE001  (one method's failure must not lose the others' timings)
                traceback.print_exc()
                results[method] = f"{type(error).__name__}: {error}".splitlines()[0]
        if args.json:
            args.json.write_text(json.dumps({m: asdict(r) if isinstance(r, common.Speed) else r
                                             for m, r in results.items()}, indent=1))
    print(f"\nauthors' time / ours (above 1: ours is faster), random ViT-B/16, fp32, batch {args.batch}, median of "
          f"{args.runs} interleaved runs, {torch.get_num_threads()} threads; hours: one base-to-new run on "
          f"{common.CALTECH101.name} (training on the base classes at {common.CALTECH101.shots} shots, "
          f"{common.CALTECH101.test_images} test images), one seed\n")
    print(table(results))
    return 1 if any(isinstance(r, str) for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
