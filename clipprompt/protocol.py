"""Run a whole evaluation protocol for one method over datasets and seeds, in one call.

    python -m clipprompt.protocol PROTOCOL METHOD [--datasets ...] [--seeds ...] [--shots ...]
                                  [--dry-run] [-- KEY VALUE ...]

PROTOCOL is base2new, xd, dg or few_shot; METHOD is a folder of `scripts/` (coop, cocoop,
zeroshot, sep, mpl, ...) holding the method's wrappers of `scripts/common/`. Each run is one
wrapper call, so settings come from the environment as for the scripts (DATA, OUTPUT, SHOTS,
LOADEP, PYTHON, CFG) and a finished run folder is skipped. Everything after `--` is passed to
every run as config overrides.

A method without training scripts (zeroshot) is evaluation-only: it is run once per dataset,
without seeds. A failed run does not stop the protocol; evaluations of a model whose training
failed are not attempted. The failures are listed at the end and the exit status is 1 if any.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from . import protocols

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"


@dataclass
class Run:
    """One call of a wrapper script: `bash scripts/<method>/<step>.sh ARGS... OVERRIDES...`."""

    script: Path
    args: list[str]
    after: "Run | None" = None  # a training run that must have succeeded first
    status: str = field(default="pending")  # pending, ok, failed (rc N), not run (...)

    def command(self, overrides: Sequence[str] = ()) -> list[str]:
        return ["bash", str(self.script), *self.args, *overrides]

    def describe(self) -> str:
        try:
            script = self.script.relative_to(REPO)
        except ValueError:
            script = self.script
        return " ".join([str(script), *self.args])


Runner = Callable[[list[str]], int]


def subprocess_runner(command: list[str]) -> int:
    """Run one script in the repository root, its output going to ours; returns its exit status."""
    return subprocess.run(command, cwd=REPO).returncode


class ProtocolError(ValueError):
    """A bad method, protocol or dataset name: reported in one line."""


def methods(scripts_dir: Path = SCRIPTS) -> list[str]:
    return sorted(p.name for p in scripts_dir.iterdir() if p.is_dir() and p.name != "common")


def _method_dir(method: str, scripts_dir: Path) -> Path:
    folder = scripts_dir / method
    if method == "common" or not folder.is_dir():
        known = methods(scripts_dir)
        close = difflib.get_close_matches(method, known, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ProtocolError(f"No method scripts in scripts/{method}/.{hint} Methods: {', '.join(known)}")
    return folder


def _script(folder: Path, step: str, protocol: str) -> Path:
    path = folder / f"{step}.sh"
    if not path.is_file():
        raise ProtocolError(f"scripts/{folder.name}/ has no {step}.sh, which protocol {protocol} needs")
    return path


def _check_datasets(datasets: Sequence[str]) -> None:
    known = sorted(set(protocols.CONFIG_OF.values()))
    for name in datasets:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ProtocolError(f"Unknown dataset {name!r}.{hint} Datasets: {', '.join(known)}")


def plan(
    protocol: str,
    method: str,
    datasets: Sequence[str] | None = None,
    seeds: Sequence[int] = protocols.SEEDS,
    shots: Sequence[int] = protocols.SHOTS,
    scripts_dir: Path = SCRIPTS,
) -> list[Run]:
    """The runs of a protocol, in order (each training run before the evaluations that load it)."""
    if protocol not in protocols.PROTOCOLS:
        raise ProtocolError(f"Unknown protocol {protocol!r}; one of {', '.join(protocols.PROTOCOLS)}")
    folder = _method_dir(method, scripts_dir)
    datasets = list(datasets) if datasets else list(protocols.datasets_of(protocol))
    _check_datasets(datasets)
    seeds = [str(s) for s in seeds]
    runs: list[Run] = []

    if protocol == "base2new":
        test = _script(folder, "base2new_test", protocol)
        if not (folder / "base2new_train.sh").is_file():  # evaluation-only (zero-shot)
            return [Run(test, [d]) for d in datasets]
        train = _script(folder, "base2new_train", protocol)
        for dataset in datasets:
            for seed in seeds:
                trained = Run(train, [dataset, seed])
                runs += [trained, Run(test, [dataset, seed], after=trained)]
        return runs

    if protocol in ("xd", "dg"):
        test = _script(folder, "xd_test", protocol)
        if not (folder / "xd_train.sh").is_file():  # evaluation-only: the source column too
            return [Run(test, [d]) for d in [protocols.SOURCE, *datasets]]
        train = _script(folder, "xd_train", protocol)
        for seed in seeds:
            trained = Run(train, [seed])
            runs += [trained, *(Run(test, [d, seed], after=trained) for d in datasets)]
        return runs

    few_shot = _script(folder, "few_shot", protocol)
    for dataset in datasets:
        for k in shots:
            runs += [Run(few_shot, [dataset, seed, str(k)]) for seed in seeds]
    return runs


def execute(runs: list[Run], overrides: Sequence[str] = (), runner: Runner = subprocess_runner,
            out=sys.stdout) -> list[Run]:
    """Run every run, continuing past failures; returns the runs that failed or were not run."""
    for i, run in enumerate(runs, 1):
        if run.after is not None and run.after.status != "ok":
            run.status = "not run (its training failed)"
            print(f"[{i}/{len(runs)}] {run.describe()}: not run, its training failed", file=out, flush=True)
            continue
        print(f"[{i}/{len(runs)}] {run.describe()}", file=out, flush=True)
        rc = runner(run.command(overrides))
        run.status = "ok" if rc == 0 else f"failed (exit status {rc})"
        if rc != 0:
            print(f"[{i}/{len(runs)}] {run.describe()}: {run.status}", file=out, flush=True)
    return [run for run in runs if run.status != "ok"]


def summary(runs: list[Run], failed: list[Run]) -> str:
    lines = [f"{len(runs) - len(failed)} of {len(runs)} runs finished."]
    if failed:
        lines.append(f"{len(failed)} failed or not run:")
        lines += [f"  {run.describe()}: {run.status}" for run in failed]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    overrides: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, overrides = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(
        prog="python -m clipprompt.protocol",
        description="Run a whole protocol (all datasets and seeds) for one method; "
        "arguments after -- are config overrides for every run.",
    )
    parser.add_argument("protocol", choices=protocols.PROTOCOLS)
    parser.add_argument("method", help="a folder of scripts/: " + ", ".join(methods()))
    parser.add_argument("--datasets", nargs="+", metavar="NAME",
                        help="narrow the datasets (for xd and dg: the targets); default: the protocol's")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(protocols.SEEDS), metavar="S")
    parser.add_argument("--shots", nargs="+", type=int, default=list(protocols.SHOTS), metavar="K",
                        help="few_shot only (default: 1 2 4 8 16)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs without running them")
    args = parser.parse_args(argv)
    if len(overrides) % 2:
        parser.error(f"config overrides come in KEY VALUE pairs; got {len(overrides)} words after --")
    return args, overrides


def main(argv: Sequence[str] | None = None, runner: Runner = subprocess_runner,
         scripts_dir: Path = SCRIPTS) -> int:
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        runs = plan(args.protocol, args.method, args.datasets, args.seeds, args.shots, scripts_dir)
    except ProtocolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        for run in runs:
            print(shlex.join(["bash", *run.describe().split(" "), *overrides]))
        return 0
    failed = execute(runs, overrides, runner)
    print(summary(runs, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
