"""What makes two runs the same run, stated once (torch-free).

A run is identified by the settings that change its result: its resolved configuration less the
keys that cannot (where the output and data live, worker counts, print and checkpoint frequency,
the frozen-feature cache). The same comparison decides whether a checkpoint may be resumed
(`clipprompt.runs.training_state`), whether a finished run folder holds the run a command asks
for (train.py, and through it the protocol scripts and driver), and is recorded in result.json
(`identity`, `identity_digest`), which the report reads.

The backbone is compared by content: where result.json records the sha256 of the CLIP file
(`backbone_sha256`) and the command names a file, the two files' sha256 decide (the same file moved
is the same run, another file at the same path another run); a published model's name (`ViT-B/16`,
whose download clip checks against the SHA-256 in its URL) compares as a name.

Deciding that a finished run is the same run needs the command's resolved configuration, so train.py
(torch, Dassl: seconds). The scripts re-run every finished run of a sweep, so result.json also records
`inputs_digest`, a digest of what the configuration was resolved from (`inputs_digest`): the trainer,
the bytes of the config files, the overrides, seed, tag, protocol and part, and a fingerprint of the
code that defines the defaults (`defaults_fingerprint`). `train.py --skip-finished` compares it
before importing torch: equal (and the same backbone content) is the same run, skipped at once; any
difference, even one that cannot change the identity, falls back to the full comparison, which skips
or refuses as before.

A variant of a run (another learning rate, say) is named by a tag (`TAG=lr0.1` for the scripts,
`--tag lr0.1` for the driver and train.py): it gets its own folder (`clipprompt.results.layout`) and
its own row in the report. Keys the protocol sets itself (`PROTOCOL_OWNED`) cannot be overridden
after the scripts' arguments or the driver's `--`: they name the run's folder, so the protocol's
own options say them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from ..fileio import file_digest

#: Keys that cannot change what is trained or measured: they may differ between a run and its resume,
#: and a finished run counts as the same run whatever they are.
MAY_DIFFER = (
    "OUTPUT_DIR",
    "RESUME",
    "DATASET.ROOT",
    "DATALOADER.NUM_WORKERS",
    "TRAIN.PRINT_FREQ",
    "TRAIN.CHECKPOINT_FREQ",
    "TRAIN.CHECKPOINT_MINUTES",
    "MODEL.BACKBONE.CACHE_DIR",
    "MODEL.FEATURE_CACHE",
    "MODEL.FEATURE_CACHE_DIR",
    "VERBOSE",
)

#: The backbone's key: compared by the file's content where both sides know it (`backbone_difference`).
BACKBONE = "MODEL.BACKBONE.NAME"

#: Keys the protocol scripts and driver set themselves -> how to say them instead.
PROTOCOL_OWNED = {
    "DATASET.NUM_SHOTS": "the training shots name the run folder: give them as SHOTS=K in the environment "
                         "(scripts and driver), or --shots K for the driver's few_shot",
    "DATASET.SUBSAMPLE_CLASSES": "the protocol sets the class subset (base2new: base, then new; others: all)",
    "SEED": "the seed names the run folder: give it as the script's SEED argument, or --seeds for the driver",
    "DATASET.NAME": "the dataset names the run folder: give it as the script's DATASET argument, "
                    "or --datasets for the driver",
}

TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def identity(flat: dict[str, Any]) -> dict[str, Any]:
    """A run's identity: its flat resolved configuration (`{"A.B": value}`) less `MAY_DIFFER`."""
    return {key: _normal(value) for key, value in sorted(flat.items()) if key not in MAY_DIFFER}


def digest(ident: dict[str, Any]) -> str:
    """A short stable fingerprint of an identity, for tables and logs."""
    text = json.dumps(ident, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(stored: dict[str, Any], current: dict[str, Any], may_differ: Sequence[str] = MAY_DIFFER) -> list[str]:
    """`KEY (stored -> current)` for each key whose value differs, ignoring `may_differ`."""
    found = []
    for key in sorted(set(stored) | set(current)):
        if key in may_differ:
            continue
        a, b = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if _normal(a) != _normal(b):
            found.append(f"{key} ({a!r} -> {b!r})")
    return found


def backbone_sha256(name: str) -> str | None:
    """The sha256 of the backbone file `name` names, or None for a published model's name (not a file)."""
    path = Path(os.path.expanduser(str(name)))
    return file_digest(path) if path.is_file() else None


def backbone_difference(record: dict, name: str, sha256: str | None) -> str | None:
    """`MODEL.BACKBONE.NAME (...)` when the backbone `name` (file content `sha256`, None for a
    published model's name) is another CLIP than the one `record` (a result.json) was run with: by
    content where both are known, else by name. None when it is the same."""
    recorded_name, recorded_sha = record.get("backbone"), record.get("backbone_sha256")
    if recorded_sha and sha256:
        if recorded_sha == sha256:
            return None
        return f"{BACKBONE} ({recorded_name!r} -> {name!r}: another file, sha256 {recorded_sha[:12]} -> {sha256[:12]})"
    if recorded_name is None or recorded_name == name:
        return None
    return f"{BACKBONE} ({recorded_name!r} -> {name!r})"


def finished_differences(record: dict, current: dict[str, Any], tag: str, sha256: str | None) -> list[str] | None:
    """How the identity `current` (its tag, its backbone's content `sha256`) differs from the finished
    run `record` (a result.json): `KEY (stored -> current)` each; None when the record holds no
    configuration to compare."""
    stored = recorded(record)
    if stored is None:
        return None
    found = differences(stored, current, (*MAY_DIFFER, BACKBONE))
    backbone = backbone_difference({"backbone": stored.get(BACKBONE), **record}, current.get(BACKBONE), sha256)
    if backbone:
        found.append(backbone)
    if (record.get("tag") or "") != tag:
        found.append(f"tag ({record.get('tag') or ''!r} -> {tag!r})")
    return found


def defaults_sources() -> list[tuple[str, Path]]:
    """(label, file) of the code that decides a configuration's defaults and how the inputs resolve
    into it: this package (the options classes, `clipprompt.config`), train.py beside it, Dassl's
    config and yacs."""
    package = Path(__file__).resolve().parents[1]
    files = [(str(path.relative_to(package.parent)), path) for path in sorted(package.rglob("*.py"))]
    if (package.parent / "train.py").is_file():
        files.append(("train.py", package.parent / "train.py"))
    for module in ("dassl.config", "yacs.config"):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            origin = Path(spec.origin)
            found = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
            files += [(f"{module}:{path.name}", path) for path in found]
    return files


@functools.lru_cache(maxsize=None)
def defaults_fingerprint() -> str:
    """A digest of `defaults_sources()`' bytes: a changed default (or anything else in that code)
    changes it, so a finished run is then compared in full rather than by its inputs."""
    digest = hashlib.sha256()
    for label, path in defaults_sources():
        data = path.read_bytes()
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def inputs_digest(inputs: dict[str, Any]) -> str:
    """The digest of what a run's configuration is resolved from (train.py's `run_inputs`) together
    with `defaults_fingerprint()`: recorded in result.json, compared by `train.py --skip-finished`."""
    text = json.dumps({"inputs": inputs, "defaults": defaults_fingerprint()}, sort_keys=True, default=repr,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def recorded(result: dict) -> dict[str, Any] | None:
    """The identity a result.json records; for results written before identities were recorded,
    computed from the configuration they saved (yacs' YAML dump). None when neither is there."""
    if isinstance(result.get("identity"), dict):
        return result["identity"]
    config = result.get("config")
    if not isinstance(config, str):
        return None
    try:
        import yaml

        tree = yaml.safe_load(config)
    except Exception:  # noqa: BLE001 - an unreadable dump is as good as none
        return None
    return identity(flatten(tree)) if isinstance(tree, dict) else None


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """`{"A": {"B": 1}}` -> `{"A.B": 1}` (tuples as lists)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = _normal(value)
    return out


def check_tag(tag: str) -> str:
    """The tag, or ValueError saying what a tag may hold."""
    if tag and not TAG.fullmatch(tag):
        raise ValueError(f"tag {tag!r}: use letters, digits and . _ + - (starting with a letter or digit)")
    return tag


def owned_overrides(overrides: Sequence[str]) -> str | None:
    """Why `overrides` (KEY VALUE ...) cannot be given to a protocol run, or None when they can."""
    for key in list(overrides)[0::2]:
        if key in PROTOCOL_OWNED:
            return f"{key} cannot be overridden in a protocol run: {PROTOCOL_OWNED[key]}."
    return None


def _normal(value):
    return [_normal(v) for v in value] if isinstance(value, (list, tuple)) else value
