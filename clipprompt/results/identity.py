"""What makes two runs the same run, stated once (torch-free).

A run is identified by the settings that change its result: its resolved configuration less the
keys that cannot (where the output and data live, worker counts, print and checkpoint frequency,
the frozen-feature cache). The same comparison decides whether a checkpoint may be resumed
(`clipprompt.runs.training_state`), whether a finished run folder holds the run a command asks
for (train.py, and through it the protocol scripts and driver), and is recorded in result.json
(`identity`, `identity_digest`), which the report reads.

A variant of a run (another learning rate, say) is named by a tag (`TAG=lr0.1` for the scripts,
`--tag lr0.1` for the driver and train.py): it gets its own folder (`clipprompt.results.layout`) and
its own row in the report. Keys the protocol sets itself (`PROTOCOL_OWNED`) cannot be overridden
after the scripts' arguments or the driver's `--`: they name the run's folder, so the protocol's
own options say them.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Sequence

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


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clipprompt.results.identity owned KEY VALUE ...`: exit 2 (one line) when a
    protocol-owned key is among the overrides (the scripts ask before anything runs)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["owned"]:
        print("usage: python -m clipprompt.results.identity owned [KEY VALUE ...]", file=sys.stderr)
        return 2
    why = owned_overrides(argv[1:])
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
