"""The project's additions to Dassl's yacs config: one node per trainer, plus a few keys.

Every trainer owns `TRAINER.<NAME>` where NAME is its registered name in upper case (CoOp ->
`TRAINER.COOP`); there is no shared grab-bag node. Each node is generated from the method's
options class (`@register_options("MYTRAINER")` in `clipprompt.options`, the one registry).
Merging goes through `merge_from_file` / `merge_from_list` here, which turn yacs' KeyError into
one line that suggests the closest key.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from yacs.config import CfgNode as CN

from .errors import ConfigError
from .options import OPTIONS


def add_project_config(cfg: CN, trainers: bool = True) -> CN:
    """Extend a Dassl default config in place with this project's keys and trainer nodes (without
    `trainers`, the nodes are left out: they need every method's module, so torch)."""
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # all, base or new (the base-to-new protocol)
    cfg.MODEL.BACKBONE.CACHE_DIR = ""  # download folder for named CLIP models ("" = $CLIP_CACHE_DIR or ~/.cache/clip)
    cfg.MODEL.FEATURE_CACHE = True  # reuse frozen test-set image features across runs (clipprompt/feature_cache.py)
    cfg.MODEL.FEATURE_CACHE_DIR = ""  # "" = $CLIPPROMPT_FEATURE_CACHE or ~/.cache/clipprompt/features
    cfg.MODEL.FUSED_ATTENTION = True  # attention through scaled_dot_product_attention (False: CLIP's own path)
    cfg.DATALOADER.SKIP_BAD_IMAGES = False  # unreadable image: stop with its path (False) or skip it (True)
    cfg.TRAIN = cfg.get("TRAIN", CN())
    cfg.TRAIN.CHECKPOINT_MINUTES = 10.0  # rolling checkpoint within an epoch at least this often; 0 = epoch ends only
    if not trainers:
        return cfg
    from . import models  # noqa: F401  (registers every method's options)

    for name, options in OPTIONS.items():
        cfg.TRAINER[name] = options.to_node()
    return cfg


def iter_keys(node: CN, prefix: str = "") -> Iterator[str]:
    """Every leaf key of `node` as a dotted path."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, CN):
            yield from iter_keys(value, path + ".")
        else:
            yield path


def _unknown_key_error(cfg: CN, exc: Exception | str, source: str) -> ConfigError:
    match = re.search(r"Non-existent (?:config )?key: ([\w.]+)", str(exc))
    key = match.group(1) if match else str(exc).strip("'\"")
    keys = list(iter_keys(cfg))
    same_but_case = [k for k in keys if k.upper() == key.upper()]
    close = same_but_case or _keys_ending_with(cfg, keys, key) or difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    shown = close[:3]
    hint = f" Did you mean {', '.join(shown[:-1]) + ' or ' if len(shown) > 1 else ''}{shown[-1]}?" if close else ""
    return ConfigError(f"Unknown config key {key} ({source}).{hint}")


def _keys_ending_with(cfg: CN, keys: list[str], key: str) -> list[str]:
    """Full keys that `key` is the end of (`N_CTX` without its section): the selected trainer's first."""
    ending = "." + key.upper()
    found = [k for k in keys if k.upper().endswith(ending)]
    trainer = str(cfg.get("TRAINER", {}).get("NAME", "")).upper()
    own = [k for k in found if trainer and k.upper().startswith(f"TRAINER.{trainer}.")]
    return own or found


def _describe_value_type(value) -> str:
    if isinstance(value, (list, tuple)):
        return "a list"
    return {bool: "True or False", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _checked_value(key: str, current, value, source: str):
    """`value` for `key` as yacs will store it (ints accepted for numbers), or one clear error."""
    if isinstance(current, CN):
        example = f"{key}.{next(iter(current))}" if len(current) else key
        raise ConfigError(f"{key} is a section of keys, not a value ({source}); set a key inside it, e.g. {example}.")
    if isinstance(value, dict):
        raise ConfigError(f"{key} is a single value, not a section of keys ({source}).")
    if value is None or current is None or type(value) is type(current):
        return value
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # `OPTIM.LR 1` means 1.0
    if isinstance(current, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(current)(value)
    raise ConfigError(
        f"Type mismatch for {key} ({source}): {value!r} is not {_describe_value_type(current)} (it was {current!r})."
    )


def _merge_mapping(cfg: CN, node: CN, data: dict, prefix: str, source: str) -> None:
    for key, value in data.items():
        full_key = f"{prefix}{key}"
        if key not in node:
            if node.is_new_allowed():
                node[key] = CN(value) if isinstance(value, dict) else value
                continue
            raise _unknown_key_error(cfg, full_key, source)
        if isinstance(node[key], CN) and isinstance(value, dict):
            _merge_mapping(cfg, node[key], value, full_key + ".", source)
        else:  # yacs reads strings as Python literals: "(224, 224)" and "1e-3" are a tuple and a float
            node[key] = _checked_value(full_key, node[key], CN._decode_cfg_value(value), source)


def _matching_folder(folder: Path) -> Path | None:
    """`folder` as it exists, each missing part replaced by its case-insensitive (or else closest) sibling."""
    found = Path(folder.anchor) if folder.is_absolute() else Path()
    for part in folder.parts[1 if folder.is_absolute() else 0:]:
        if not (found / part).is_dir():
            siblings = [child.name for child in found.iterdir() if child.is_dir()] if found.is_dir() else []
            same = [name for name in siblings if name.lower() == part.lower()]
            close = same or difflib.get_close_matches(part, siblings, n=1, cutoff=0.6)
            if not close:
                return None
            part = close[0]
        found = found / part
    return found


def _config_suggestion(path: str) -> str:
    """'; did you mean <closest>? The configs in <folder>: ...' from the YAML files that exist, or a plain end."""
    given = Path(path)
    folder, name = _matching_folder(given), ""
    if folder is None:  # a file name: look in the folder above it
        folder, name = _matching_folder(given.parent), given.name
    files = sorted(file for file in folder.glob("*.y*ml") if file.is_file()) if folder is not None else []
    if not files:
        return "; give a YAML file inside it." if given.is_dir() else "."
    if name:
        def closeness(file: Path) -> tuple[int, float]:  # the longest shared start, then the most alike
            given_name, other = name.lower(), file.name.lower()
            shared = len(os.path.commonprefix([given_name, other]))
            return shared, difflib.SequenceMatcher(None, given_name, other).ratio()

        files.sort(key=closeness, reverse=True)
    listed = ", ".join(file.name for file in files)
    return f"; did you mean {files[0]}? The configs in {folder}/: {listed}."


_YAML_TYPES = {str: "string", list: "list", int: "number", float: "number", bool: "boolean"}


def read_config_file(path: str) -> dict:
    """The mapping in a YAML config file, or one line saying why there is none.

    Missing, a folder, unreadable, not UTF-8, a YAML syntax error (with its line and column),
    or a document that is not a mapping of keys. An empty file is an empty mapping.
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist{_config_suggestion(path)}") from None
    except IsADirectoryError:
        raise ConfigError(f"Config file {path} is a folder{_config_suggestion(path)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"Cannot read config file {path}: {reason}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"Config file {path} is not valid YAML{where}: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {path} holds a {_YAML_TYPES.get(type(data), type(data).__name__)}, not a mapping of config keys "
            "(e.g. 'OPTIM:' with 'LR: 0.002' under it)."
        )
    return data


def merge_from_file(cfg: CN, path: str) -> dict:
    """Merge a YAML config file into `cfg`; every way the file can be wrong is one clear line.

    Returns the mapping the file holds (what it sets)."""
    data = read_config_file(path)
    try:
        _merge_mapping(cfg, cfg, data, "", f"in {path}")
    except (KeyError, ValueError, AssertionError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{exc} (in {path})") from None
    return data


def merge_from_list(cfg: CN, opts: Sequence[str]) -> None:
    """Merge trailing `KEY VALUE` pairs (values read as Python literals, like yacs), with clear errors."""
    flags = [item for item in opts[0::2] if item.startswith("--")] or [item for item in opts if item.startswith("--")]
    if flags:
        raise ConfigError(
            f"{flags[0]} comes after the KEY VALUE overrides, where it reads as a config key; "
            "put every --flag before the overrides."
        )
    if len(opts) % 2:
        raise ConfigError(f"Config overrides come in KEY VALUE pairs; got an odd number: {' '.join(opts)}")
    try:
        for key, raw in zip(opts[0::2], opts[1::2]):
            node = cfg
            for part in key.split(".")[:-1]:
                if not isinstance(node, CN) or part not in node:
                    raise _unknown_key_error(cfg, key, "on the command line")
                node = node[part]
            last = key.split(".")[-1]
            if not isinstance(node, CN) or last not in node:
                raise _unknown_key_error(cfg, key, "on the command line")
            value = CN._decode_cfg_value(raw)  # yacs' own literal parsing: "0.5" -> 0.5, "(1, 2)" -> (1, 2)
            node[last] = _checked_value(key, node[last], value, "on the command line")
    except ConfigError:
        raise
    except (KeyError, AssertionError) as exc:  # anything of yacs' own that still objects
        raise _unknown_key_error(cfg, exc, "on the command line") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

