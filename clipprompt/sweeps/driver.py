"""Run a whole evaluation protocol for one method over datasets and seeds, in one call.

    python -m clipprompt.protocol PROTOCOL METHOD [--datasets ...] [--seeds ...] [--shots ...]
                                  [--launcher serial|local|slurm ...] [--dry-run] [-- KEY VALUE ...]
    python -m clipprompt.protocol status OUTPUT [--format table|csv]

PROTOCOL is base2new, xd, dg or few_shot; METHOD is a folder of `scripts/` (coop, cocoop,
zeroshot, sep, mpl, ...) holding the method's wrappers of `scripts/common/`. Each run is one
wrapper call, so settings come from the environment as for the scripts (DATA, OUTPUT, SHOTS,
LOADEP, PYTHON, CFG) and a finished run folder is skipped when it holds the same configuration
(refused, naming the differing keys, when it does not: `--tag NAME` runs a variant in its own
folders). Everything after `--` is passed to every run as config overrides, except the keys the
protocol sets (shots, class subset, seed, dataset), which are refused before anything runs.

A method without training scripts (zeroshot) is evaluation-only: it is run once per dataset,
without seeds. A failed run does not stop the protocol; evaluations of a model whose training
failed are not attempted. The failures are listed at the end and the exit status is 1 if any;
runs that another live driver holds are listed apart and are not failures. Before anything runs,
the overrides are checked once (train.py's messages) and duplicate seeds, datasets and shots dropped.
Where the runs execute (here, N at once, SLURM) is `clipprompt.sweeps.launch`; every run's state and log
are kept under OUTPUT/.sweeps/, which `status` reads. docs/sweeps.md has the details.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from . import launch
from ..results import identity, layout
from ..results import protocols
from ..errors import ConfigError
from ..fileio import atomic_write_text

REPO = Path(__file__).resolve().parents[2]
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


Runner = Callable[[list[str]], int]  # for tests: a command -> its exit status


def output_root() -> Path:
    """OUTPUT as the scripts see it (they run in the repository root)."""
    return REPO / os.environ.get("OUTPUT", "output")


def resolve(run: Run, overrides: Sequence[str] = (), tag: str = "") -> launch.Job:
    """The job of a run: its command and the folders it writes, as its script states them."""
    env = {**{k: os.environ[k] for k in launch.SCRIPT_ENV if k in os.environ}, "TAG": tag}
    printed = subprocess.run(["bash", str(run.script), *run.args], cwd=REPO,
                             env={**os.environ, "PRINT_DIR": "1", "TAG": tag}, capture_output=True, text=True)
    if printed.returncode != 0:
        raise ProtocolError(f"{run.describe()}: {printed.stderr.strip() or 'could not say its run folder'}")
    keys = []
    for line in printed.stdout.splitlines():
        fields = line.split("\t") + [""] * 8
        folder, protocol, part, trainer, config, dataset, shots, seed = fields[:8]
        keys.append(dict(protocol=protocol, part=part, trainer=trainer, config=config, dataset=dataset,
                         shots=int(shots) if shots else None, seed=int(seed) if seed else None, tag=tag))
    output = output_root()
    name = str(layout.RunKey(**keys[0]).folder(output).relative_to(output)).replace("/", "__")
    return launch.Job(name=name, command=run.command(overrides), cwd=str(REPO), output=str(output), env=env,
                      keys=keys, title=run.describe())


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


@dataclass
class Launcher:
    kind: str = "serial"  # serial, local, slurm
    slots: int = 1
    gpus: list[str] | None = None
    slurm: launch.SlurmOptions = field(default_factory=launch.SlurmOptions)
    wait: bool = True


def check_output(output: Path) -> None:
    """OUTPUT can hold the sweep's state (OUTPUT/.sweeps), or one line saying why not."""
    try:
        (output / launch.SWEEPS).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProtocolError(f"OUTPUT {output} cannot hold the sweep: {exc.strerror or exc} "
                            f"({exc.filename or output}); set OUTPUT to a folder you can write in") from None


def write_manifest(name: str, jobs: list[launch.Job]) -> None:
    """Add the jobs to OUTPUT/.sweeps/manifests/NAME.json, which `status` reads."""
    if not jobs:
        return
    path = Path(jobs[0].output) / launch.SWEEPS / "manifests" / f"{name}.json"
    try:
        known = {job["name"]: job for job in json.loads(path.read_text())}
    except (OSError, ValueError):
        known = {}
    known.update({job.name: asdict(job) for job in jobs})
    atomic_write_text(path, json.dumps(list(known.values()), indent=1) + "\n")


def execute(runs: list[Run], overrides: Sequence[str] = (), runner: Runner | None = None,
            out=None, launcher: Launcher | None = None, manifest: str | None = None,
            tag: str = "") -> list[Run]:
    """Run every run, continuing past failures; returns the runs that failed or were not run."""
    launcher, out = launcher or Launcher(), out or sys.stdout  # stdout at call time (tests capture it)
    with ThreadPoolExecutor(max_workers=8) as pool:  # each asks its script (bash + python): overlap them
        jobs = list(pool.map(lambda run: resolve(run, overrides, tag), runs))
    by_run = {id(run): job for run, job in zip(runs, jobs)}
    after = {}
    for run, job in zip(runs, jobs):
        if run.after is not None:
            after[job.name] = by_run[id(run.after)].name
            job.after = by_run[id(run.after)].keys
    if manifest:
        write_manifest(manifest, jobs)
    if launcher.kind == "slurm":
        refused = check_finished_here(jobs, out) if runner is None else {}
        blocked = set(refused) | {name for name, dep in after.items() if dep in refused}
        steps = [[j for r, j in zip(runs, jobs) if r.after is None and j.name not in blocked],
                 [j for r, j in zip(runs, jobs) if r.after and j.name not in blocked]]
        ids = launch.submit_slurm([step for step in steps if step], launcher.slurm, out=out)
        if launcher.wait:
            launch.wait_slurm(ids)
        for run, job in zip(runs, jobs):
            if job.name in blocked:
                run.status = refused.get(job.name, "not run (its training failed)")
            elif not launcher.wait:
                run.status = "ok"
            else:
                state = launch.live_state(job)
                run.status = "ok" if state == "done" else f"{state} (log: {job.log})"
        return [run for run in runs if run.status != "ok"]
    slots = launcher.slots if launcher.kind == "local" else 1
    status: dict[str, str] = {}
    try:
        status = launch.run_local(jobs, after, slots=slots, gpus=launcher.gpus, runner=runner, out=out)
    except launch.Stopped:
        for run, job in zip(runs, jobs):
            run.status = launch.live_state(job) if runner is None else "stopped"
            run.status = "ok" if run.status == "done" else run.status
        raise
    for run, job in zip(runs, jobs):
        run.status = status.get(job.name, "not run")
    return [run for run in runs if run.status != "ok" and not run.status.startswith(launch.ELSEWHERE)]


def check_finished_here(jobs: list[launch.Job], out) -> dict[str, str]:
    """SLURM does not resubmit a finished run, so its configuration is compared here first: each
    finished run's script runs with CHECK_ONLY=1 (train.py --skip-finished skips the same run and
    refuses another; nothing is trained). Returns job name -> why, for each refused run."""
    def check(job):
        env = {**os.environ, **job.env, "CHECK_ONLY": "1"}
        return job, subprocess.run(job.command, cwd=job.cwd, env=env, capture_output=True, text=True)

    refused = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for job, done in pool.map(check, [job for job in jobs if job.finished()]):
            if done.returncode != 0:
                lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
                why = next((line for line in reversed(lines) if line.startswith("error: ")), lines[-1] if lines else "")
                refused[job.name] = f"failed (exit status {done.returncode}): {why}"
                print(f"{job.title}: {refused[job.name]}", file=out, flush=True)
    return refused


def status_rows(output: Path) -> list[dict]:
    """Every run of every manifest under OUTPUT, with its state."""
    rows = []
    manifests = sorted((output / launch.SWEEPS / "manifests").glob("*.json"))
    jobs = []
    for path in manifests:
        try:
            jobs += [launch.Job(**record) for record in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            continue
    queue = launch.slurm_states([launch.read_state(job).get("job_id") for job in jobs])
    seen = set()
    for job in jobs:
        if job.name in seen:
            continue
        seen.add(job.name)
        job.output = str(output)  # the tree may have moved
        state = launch.live_state(job, queue)
        for (folder, _), key in zip(job.folders(), job.keys):
            protocol, part = layout.RunKey(**key).recorded()
            record = layout.read_result(folder) if state == "done" else None
            detail = ""
            if state in ("failed", "stopped"):
                detail = f"{launch.last_line(job.log)} ({job.log})"
            elif state in ("running", "queued"):
                detail = str(launch.read_state(job).get("job_id") or launch.read_state(job).get("pid") or "")
            acc = layout.accuracy(record) if record else None
            rows.append(dict(protocol=protocol, part=part, trainer=layout.RunKey(**key).method, config=key["config"],
                             dataset=key["dataset"], shots=key["shots"] if key["shots"] is not None else "",
                             seed=key["seed"] if key["seed"] is not None else "", state=state,
                             accuracy=f"{acc:.2f}" if acc is not None else "", detail=detail,
                             folder=str(Path(folder).relative_to(output))))
    return rows


def status_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipprompt.protocol status",
                                     description="The state of every run the protocol driver planned under OUTPUT; "
                                     "exit status 0 only when all are done.")
    parser.add_argument("output")
    parser.add_argument("--format", choices=("table", "csv"), default="table")
    args = parser.parse_args(argv)
    output = Path(args.output).resolve()
    rows = status_rows(output)
    if not rows:
        print(f"error: no runs planned by the protocol driver under {output} ({launch.SWEEPS}/manifests/)",
              file=sys.stderr)
        return 2
    columns = ["protocol", "part", "trainer", "config", "dataset", "shots", "seed", "state", "accuracy", "detail"]
    if args.format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*columns, "folder"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        print(buffer.getvalue(), end="")
    else:
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns[:-1]}
        print("  ".join(c.ljust(widths[c]) for c in columns[:-1]) + "  detail")
        for r in rows:
            print("  ".join(str(r[c]).ljust(widths[c]) for c in columns[:-1]) + "  " + r["detail"])
        counts = {}
        for r in rows:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0 if all(r["state"] == "done" for r in rows) else 1


def summary(runs: list[Run], failed: list[Run]) -> str:
    elsewhere = [run for run in runs if run.status.startswith(launch.ELSEWHERE)]
    lines = [f"{len(runs) - len(failed) - len(elsewhere)} of {len(runs)} runs finished."]
    if elsewhere:  # not failures: another driver (or SLURM job) runs them; `status` shows when they end
        lines.append(f"{len(elsewhere)} left to another driver (status shows when they are done):")
        lines += [f"  {run.describe()}: {run.status[len(launch.ELSEWHERE) + 2:-1]}" for run in elsewhere]
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
    else:
        key = next((i for i, word in enumerate(argv) if CONFIG_KEY.fullmatch(word)), None)
        if key is not None:  # argparse would say "invalid int value" about the first key
            raise ProtocolError("put config overrides after --: python -m clipprompt.protocol "
                                + shlex.join([*argv[:key], "--", *argv[key:]]))
    parser = argparse.ArgumentParser(
        prog="python -m clipprompt.protocol",
        description="Run a whole protocol (all datasets and seeds) for one method; "
        "arguments after -- are config overrides for every run.",
        epilog="Where a sweep stands: python -m clipprompt.protocol status OUTPUT [--format table|csv] "
        "(one row per run; exit status 0 only when every run is done).",
    )
    parser.add_argument("protocol", choices=protocols.PROTOCOLS)
    parser.add_argument("method", help="a folder of scripts/: " + ", ".join(methods()))
    parser.add_argument("--datasets", nargs="+", metavar="NAME",
                        help="narrow the datasets (for xd and dg: the targets); default: the protocol's")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(protocols.SEEDS), metavar="S")
    parser.add_argument("--shots", nargs="+", type=int, default=list(protocols.SHOTS), metavar="K",
                        help="few_shot only (default: 1 2 4 8 16)")
    parser.add_argument("--tag", default=os.environ.get("TAG", ""), metavar="NAME",
                        help="name a variant of the method (e.g. --tag lr0.1 -- OPTIM.LR 0.1): its own run folders "
                        "(TRAINER@NAME) and its own row in the report; default: $TAG")
    parser.add_argument("--dry-run", action="store_true", help="print the runs without running them")
    where = parser.add_argument_group("where the runs execute (docs/sweeps.md)")
    where.add_argument("--launcher", choices=("serial", "local", "slurm"), default="serial",
                       help="serial: one after another here (default); local: --slots at once here; "
                       "slurm: job arrays through submitit")
    where.add_argument("--slots", type=int, default=1, help="local: runs at once")
    where.add_argument("--gpus", help="local: comma-separated GPU ids, one per slot (default: CPU)")
    where.add_argument("--partition", help="slurm partition")
    where.add_argument("--account", help="slurm account")
    where.add_argument("--gpus-per-job", type=int, default=0)
    where.add_argument("--cpus-per-job", type=int, default=1)
    where.add_argument("--mem-gb", type=float)
    where.add_argument("--time-min", type=int, default=60, help="slurm time limit per job (minutes)")
    where.add_argument("--array-parallelism", type=int, default=64, help="slurm: jobs of an array at once")
    where.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                       help="extra sbatch option (repeatable), e.g. --sbatch qos=high")
    where.add_argument("--no-wait", action="store_true", help="slurm: submit and return")
    args = parser.parse_args(argv)
    if args.slots < 1:
        parser.error("--slots must be at least 1")
    bad = [o for o in args.sbatch if "=" not in o]
    if bad:
        parser.error(f"--sbatch takes KEY=VALUE, got {bad[0]!r}")
    if args.launcher == "slurm" and not args.dry_run and importlib.util.find_spec("submitit") is None:
        parser.error("--launcher slurm needs submitit: pip install -e .[slurm]")
    if len(overrides) % 2:
        parser.error(f"config overrides come in KEY VALUE pairs; got {len(overrides)} words after --")
    return args, overrides


CONFIG_KEY = re.compile(r"[A-Z][A-Z0-9_]+(\.[A-Z0-9_]+)*")  # a yacs key as overrides name it: MODEL.BACKBONE.NAME


def without_duplicates(args: argparse.Namespace) -> None:
    """--datasets, --seeds and --shots with each value once (a run planned twice fails on its lock)."""
    for name in ("datasets", "seeds", "shots"):
        values = getattr(args, name)
        if not values or len(set(values)) == len(values):
            continue
        twice = [value for value in dict.fromkeys(values) if values.count(value) > 1]
        print(f"--{name} names {' '.join(map(str, twice))} more than once: each run is planned once.")
        setattr(args, name, list(dict.fromkeys(values)))


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse a bad override once, before any run, with the line train.py would print for it.

    The overrides are merged into the defaults as train.py merges them (an unknown key with the
    closest one, a value of the wrong type), and each overridden key is checked against its rule in
    `clipprompt.validation.RULES` (range, names) where the rule does not depend on other keys. What
    needs the whole config (the trainer's options, the files it names) is left to train.py."""
    if not overrides:
        return
    try:
        from dassl.config import get_cfg_default  # Dassl's defaults alone: not its data modules
    except ImportError:
        return  # nothing can run; train.py says why
    from ..config import add_project_config, merge_from_list
    from ..validation import RULES, check_value

    given = set(overrides[0::2])
    # The trainers' nodes need every method's module (torch, seconds): only for TRAINER keys, and for
    # an unknown key, whose closest match may be one of theirs.
    cfg = add_project_config(get_cfg_default(), trainers=any(key.startswith("TRAINER.") for key in given))
    try:
        merge_from_list(cfg, overrides)
    except ConfigError:
        cfg = add_project_config(get_cfg_default())
        merge_from_list(cfg, overrides)
    for rule in RULES:
        if rule.key in given and rule.when is None:
            node = cfg
            for part in rule.key.split("."):
                node = node[part]
            check_value(rule, node)


def launcher_of(args: argparse.Namespace) -> Launcher:
    slurm = launch.SlurmOptions(
        partition=args.partition, account=args.account, gpus_per_job=args.gpus_per_job,
        cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb, time_min=args.time_min,
        array_parallelism=args.array_parallelism, sbatch=dict(o.split("=", 1) for o in args.sbatch))
    gpus = args.gpus.split(",") if args.gpus else None
    return Launcher(args.launcher, args.slots, gpus, slurm, wait=not args.no_wait)


def main(argv: Sequence[str] | None = None, runner: Runner | None = None,
         scripts_dir: Path = SCRIPTS) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["status"]:
        try:
            return status_main(argv[1:])
        except launch.SlurmError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    try:  # before anything runs: a bad tag, a protocol-owned key or a bad override would train unusable runs
        args, overrides = parse_args(argv)
        identity.check_tag(args.tag)
        why = identity.owned_overrides(overrides)
        if why:
            raise ProtocolError(why)
        without_duplicates(args)
        runs = plan(args.protocol, args.method, args.datasets, args.seeds, args.shots, scripts_dir)
        check_overrides(overrides)
    except (ProtocolError, ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        for run in runs:
            print(("TAG=" + shlex.quote(args.tag) + " " if args.tag else "")
                  + shlex.join(["bash", *run.describe().split(" "), *overrides]))
        return 0
    try:
        check_output(output_root())
        failed = execute(runs, overrides, runner, launcher=launcher_of(args),
                         manifest=f"{args.protocol}-{args.method}" + (f"@{args.tag}" if args.tag else ""), tag=args.tag)
    except ProtocolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except launch.SlurmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except launch.Stopped as stop:
        print(summary(runs, [run for run in runs if run.status != "ok"
                             and not run.status.startswith(launch.ELSEWHERE)]))
        print(f"Stopped by {stop}; the same command resumes.")
        return stop.exit_status
    print(summary(runs, failed))
    return 1 if failed else 0

