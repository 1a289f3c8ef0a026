"""Where each run of a protocol lives, stated once: the scripts, the driver, `status` and the report ask here.

    python -m clipprompt.results.layout dir OUTPUT PROTOCOL PART TRAINER CONFIG DATASET SHOTS [SEED] [--tag TAG]
        prints `DIR<TAB>PROTOCOL<TAB>PART` (the protocol and part that result.json records)
    python -m clipprompt.results.layout finished DIR [--trainer T] [--dataset D] [--seed S] [--shots K]
                                             [--protocol P] [--part X] [--config C] [--tag TAG] [-- KEY VALUE ...]
        exit 0 when DIR holds a finished run of this key, 1 (saying why) otherwise, and 2 (one line)
        when the user's overrides KEY VALUE ... set a key the protocol owns
        (`identity.PROTOCOL_OWNED`): the scripts' one question before a run. Whether a finished run
        is the same configuration is train.py's (`--skip-finished`, `clipprompt.results.identity`)

Protocols and parts use the report's vocabulary: base2new has the parts `base` (training on the
base classes, evaluated on them) and `new`; xd and dg have `source` (the ImageNet training,
shared by both, recorded as xd) and `target`; few_shot has `shots_K`. An evaluation-only method
(zero-shot, no seed) lives under `zeroshot/DATASET/SUBSET/`; asked as protocol `zeroshot` with
the class subset (all, base, new) as its part, it records the protocol and part it serves. A run is finished only when its `result.json`
parses and records the run this folder is for, so a torn or foreign result is run again.

A tagged variant of a method (`TAG=lr0.1`, `--tag lr0.1`) lives beside it, its trainer folder named
`TRAINER@TAG` (`.../CoOp@lr0.1/vit_b16_ep50/seed1`), and records the tag in result.json.
Torch-free, so the scripts pay ~50 ms per question.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from . import identity, protocols

RESULT_FILE = "result.json"
#: (protocol, part) -> the folders under OUTPUT, for trained methods.
FOLDERS = {
    ("base2new", "base"): "base2new/train_base",
    ("base2new", "new"): "base2new/test_new",
    ("xd", "source"): "xd/train",
    ("xd", "target"): "xd/test",
    ("dg", "source"): "xd/train",
    ("dg", "target"): "xd/test",
}
#: zero-shot: (protocol, part) -> the class subset, which names its folder.
ZEROSHOT_SUBSET = {("base2new", "base"): "base", ("base2new", "new"): "new",
                   ("xd", "source"): "all", ("xd", "target"): "all",
                   ("dg", "source"): "all", ("dg", "target"): "all"}


TAG_MARK = "@"


class LayoutError(ValueError):
    pass


def split_method(name: str) -> tuple[str, str]:
    """A method folder's (trainer, tag): `CoOp@lr0.1` -> ("CoOp", "lr0.1")."""
    trainer, _, tag = name.partition(TAG_MARK)
    return trainer, tag


@dataclass(frozen=True)
class RunKey:
    """Everything that names a run folder."""

    protocol: str
    part: str
    trainer: str
    config: str
    dataset: str
    shots: int | None = None
    seed: int | None = None  # None: evaluation-only (zero-shot)
    tag: str = ""  # a named variant of the method (clipprompt.results.identity)

    @property
    def method(self) -> str:
        """The method's folder name: the trainer, and its tag after `@`."""
        return f"{self.trainer}{TAG_MARK}{self.tag}" if self.tag else self.trainer

    def recorded(self) -> tuple[str, str]:
        """The (protocol, part) result.json records: the ImageNet training is xd's source, the
        ImageNet variants are dg's targets, whichever protocol asked."""
        if self.protocol == "zeroshot":  # part: the class subset
            if self.part in ("base", "new"):
                return "base2new", self.part
            return RunKey("xd", "source" if self.dataset == protocols.SOURCE else "target", self.trainer,
                          self.config, self.dataset).recorded()
        if self.protocol in ("xd", "dg"):
            if self.part == "source":
                return "xd", "source"
            return ("dg" if self.dataset in protocols.DG_TARGETS else "xd"), "target"
        return self.protocol, self.part

    def folder(self, output: str | Path) -> Path:
        output = Path(output)
        try:
            identity.check_tag(self.tag)
        except ValueError as error:
            raise LayoutError(str(error)) from None
        if self.seed is None:
            subset = self.part if self.protocol == "zeroshot" else ZEROSHOT_SUBSET.get((self.protocol, self.part))
            if subset is None:
                raise LayoutError(f"no zero-shot layout for {self.protocol}/{self.part}")
            return output / "zeroshot" / self.dataset / subset / self.method / self.config
        if self.shots is None:
            raise LayoutError("a trained run needs its shots")
        if self.protocol == "few_shot":
            if self.part != f"shots_{self.shots}":
                raise LayoutError(f"few_shot's part is shots_{self.shots}, not {self.part!r}")
            top = "few_shot"
        else:
            top = FOLDERS.get((self.protocol, self.part))
            if top is None:
                parts = sorted(p for q, p in FOLDERS if q == self.protocol)
                raise LayoutError(f"unknown part {self.part!r} of protocol {self.protocol!r}; parts: {parts}")
        return output / top / self.dataset / f"shots_{self.shots}" / self.method / self.config / f"seed{self.seed}"


def read_result(folder: str | Path) -> dict | None:
    """The parsed result.json of a folder, or None when absent, torn or not a JSON object."""
    try:
        record = json.loads((Path(folder) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("metrics"), dict) else None


def mismatch(record: dict, expected: dict) -> str | None:
    """Why `record` is not the run `expected` describes (None when it is). Keys of `expected`:
    trainer, dataset (config stem), seed, shots, protocol, part, config, tag; absent ones are not checked,
    and protocol/part/config are only checked where the record has them (older results lack them)."""
    checks = {
        "trainer": record.get("trainer"),
        "dataset": protocols.CONFIG_OF.get(record.get("dataset"), record.get("dataset")),
        "seed": record.get("seed"),
        "shots": record.get("num_shots"),
        "protocol": record.get("protocol"),
        "part": record.get("part"),
        "config": record.get("config_name"),
        "tag": record.get("tag") or "",
    }
    optional = {"protocol", "part", "config"}
    for key, want in expected.items():
        if want is None or key not in checks:
            continue
        have = checks[key]
        if have is None and key in optional:
            continue
        if str(have) != str(want):
            return f"its result.json records {key} {have!r}, not {want!r}"
    return None


def finished(folder: str | Path, expected: dict | None = None) -> tuple[bool, str]:
    """(True, accuracy text) for a finished matching run, (False, why) otherwise."""
    record = read_result(folder)
    if record is None:
        exists = (Path(folder) / RESULT_FILE).exists()
        return False, f"{RESULT_FILE} is not valid" if exists else f"no {RESULT_FILE}"
    why = mismatch(record, expected or {})
    if why:
        return False, why
    return True, "finished"


def expected_of(key: RunKey) -> dict:
    """What result.json must record for `key`. Zero-shot runs record their seed and shots anyway,
    so only the rest is checked for them."""
    protocol, part = key.recorded()
    expected = dict(trainer=key.trainer, dataset=key.dataset, protocol=protocol, part=part, config=key.config,
                    tag=key.tag)
    if key.seed is not None:
        expected.update(seed=key.seed)
        if part != "target" and part != "new":  # evaluations record the shots of their own config
            expected.update(shots=key.shots)
    return expected


def accuracy(record: dict) -> float | None:
    value = record.get("metrics", {}).get("accuracy")
    return float(value) if isinstance(value, (int, float)) else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipprompt.results.layout", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dir", help="print DIR, PROTOCOL and PART of a run (tab-separated)")
    for name in ("output", "protocol", "part", "trainer", "config", "dataset"):
        d.add_argument(name)
    d.add_argument("shots", nargs="?", default="")
    d.add_argument("seed", nargs="?", default="")
    d.add_argument("--tag", default="")
    f = sub.add_parser("finished", help="exit 0 when DIR holds a finished run matching the options")
    f.add_argument("folder")
    for name in ("trainer", "dataset", "seed", "shots", "protocol", "part", "config"):
        f.add_argument(f"--{name}")
    f.add_argument("--tag", default="")
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []  # the user's KEY VALUE overrides
    args = parser.parse_args(argv[:len(argv) - len(overrides) - 1] if "--" in argv else argv)
    if args.command == "dir":
        try:
            key = RunKey(args.protocol, args.part, args.trainer, args.config, args.dataset,
                         int(args.shots) if args.shots else None, int(args.seed) if args.seed else None, args.tag)
            print("\t".join([str(key.folder(args.output)), *key.recorded()]))
        except (LayoutError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    why = identity.owned_overrides(overrides)
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    expected = {k: getattr(args, k) for k in ("trainer", "dataset", "seed", "shots", "protocol", "part", "config", "tag")}
    done, why = finished(args.folder, expected)
    result = Path(args.folder) / RESULT_FILE
    if done:
        pass  # train.py --skip-finished compares its configuration: skipped if the same, refused if not
    elif result.exists() and read_result(args.folder) is None:  # torn: set it aside, run again
        result.replace(result.with_name(RESULT_FILE + ".invalid"))
        print(f"Running again: {args.folder}: its {RESULT_FILE} was not valid (kept as {RESULT_FILE}.invalid)")
    elif result.exists():
        print(f"Not skipping {args.folder}: {why}")
    elif Path(args.folder).is_dir():
        print(f"Resuming the unfinished run in {args.folder}")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
