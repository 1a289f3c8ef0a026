"""The project's additions to Dassl's yacs config: one node per trainer, plus a few keys.

Every trainer owns `TRAINER.<NAME>` where NAME is its registered name in upper case (CoOp ->
`TRAINER.COOP`); there is no shared grab-bag node. Each node is generated from the method's
options class (`@register_options("MYTRAINER")` in `clipprompt.options`, the one registry).
Merging goes through `merge_from_file` / `merge_from_list` here, which turn yacs' KeyError into
one line that suggests the closest key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence

from yacs.config import CfgNode as CN

from .errors import ConfigError
from .options import OPTIONS


def add_project_config(cfg: CN) -> CN:
    """Extend a Dassl default config in place with this project's keys and trainer nodes."""
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # all, base or new (the base-to-new protocol)
    cfg.MODEL.BACKBONE.CACHE_DIR = ""  # download folder for named CLIP models ("" = $CLIP_CACHE_DIR or ~/.cache/clip)
    cfg.MODEL.FUSED_ATTENTION = True  # attention through scaled_dot_product_attention (False: CLIP's own path)
    cfg.DATALOADER.SKIP_BAD_IMAGES = False  # unreadable image: stop with its path (False) or skip it (True)
    cfg.TRAIN = cfg.get("TRAIN", CN())
    cfg.TRAIN.CHECKPOINT_MINUTES = 10.0  # rolling checkpoint within an epoch at least this often; 0 = epoch ends only
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


def _unknown_key_error(cfg: CN, exc: Exception, source: str) -> ConfigError:
    match = re.search(r"Non-existent (?:config )?key: ([\w.]+)", str(exc))
    key = match.group(1) if match else str(exc)
    close = difflib.get_close_matches(key, list(iter_keys(cfg)), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    return ConfigError(f"Unknown config key {key} ({source}).{hint}")


def merge_from_file(cfg: CN, path: str) -> None:
    """`cfg.merge_from_file`, with one clear error for a missing file or an unknown key."""
    try:
        cfg.merge_from_file(path)
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.") from None
    except KeyError as exc:
        raise _unknown_key_error(cfg, exc, f"in {path}") from None
    except ValueError as exc:
        raise ConfigError(f"{exc} (in {path})") from None


def merge_from_list(cfg: CN, opts: Sequence[str]) -> None:
    """`cfg.merge_from_list` for trailing `KEY VALUE` pairs, with clear errors."""
    if len(opts) % 2:
        raise ConfigError(f"Config overrides come in KEY VALUE pairs; got an odd number: {' '.join(opts)}")
    try:
        cfg.merge_from_list(list(opts))
    except (KeyError, AssertionError) as exc:  # yacs asserts on unknown keys given as a list
        raise _unknown_key_error(cfg, exc, "on the command line") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
