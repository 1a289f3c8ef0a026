"""The project's additions to Dassl's yacs config: one node per trainer, plus a few keys.

Every trainer owns `TRAINER.<NAME>` where NAME is its registered name in upper case (CoOp ->
`TRAINER.COOP`); there is no shared grab-bag node. A trainer of your own registers its node
with `@register_trainer_config("MYTRAINER")`. Merging goes through `merge_from_file` /
`merge_from_list` here, which turn yacs' KeyError into one line that suggests the closest key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Sequence

from yacs.config import CfgNode as CN

from .errors import ConfigError
from .options import OPTIONS
from .precision import PRECISIONS

TRAINER_CONFIGS: dict[str, Callable[[], CN]] = {}


def register_trainer_config(name: str):
    """Register a function returning the default `TRAINER.<name>` node."""

    def decorator(fn: Callable[[], CN]) -> Callable[[], CN]:
        TRAINER_CONFIGS[name.upper()] = fn
        return fn

    return decorator


@register_trainer_config("COCOOP")
def cocoop_config() -> CN:
    node = CN()
    node.N_CTX = 16
    node.CTX_INIT = ""
    node.PREC = "fp16"
    node.TEXT_CHUNK = 0  # prompts per text-encoder pass over (image, class) pairs; 0 = all at once
    return node


@register_trainer_config("SEP")
def sep_config() -> CN:
    node = CN()
    node.N_CTX = 6  # learnable text context vectors (the TFMs read the N_CTX tokens after them)
    node.N_CTX_V = 4  # learnable visual prompt tokens = salient image tokens selected per layer
    node.CTX_INIT = ""  # initialise the text context from these words (then N_CTX = their token count)
    node.LAYERS = None  # block indices with a Token Fusion Module, e.g. [4, 8]; None = every block but the first
    node.W = 8.0  # textual consistency weight
    node.W_V = 6.0  # visual consistency weight
    node.VISUAL_SELECTION = ""  # image (top-k tokens of each image) or batch; "" = image, batch with OFFICIAL_COMPAT
    node.OFFICIAL_COMPAT = False  # the authors' code: TFM attention across the batch, one token set per batch
    node.TEMPLATE = ""  # hand-crafted template for t_hand, e.g. "a photo of a {}."; "" = the dataset's
    node.ADAM_EPS = 1e-3  # eps of Adam-family optimizers (the authors' OPTIM.EPS; Dassl's default is 1e-8)
    node.PREC = "fp16"
    return node


@register_trainer_config("MPL")
def mpl_config() -> CN:
    node = CN()
    node.N_CTX = 4  # learnable text context vectors (ignored when CTX_INIT is set: then its token count)
    node.CTX_INIT = "a photo of a"  # initialise the text context from these words ("" = random N(0, 0.02²))
    node.N_CTX_V = 4  # visual prompt tokens that TVP appends to the image encoder's input
    node.FTP = CN()
    node.FTP.MODE = "mlp"  # image feature -> one shift per context token: mlp (bottleneck meta-net) or attn
    node.FTP.REDUCTION = 16  # mlp: the meta-net's hidden width is embed_dim // REDUCTION
    node.FTP.ATTN_HEADS = 0  # attn: heads of the query-to-patch cross-attention; 0 = text width // 64
    node.TVP = CN()
    node.TVP.TOPK = 5  # classes whose image-conditioned text features form the visual prompt (capped at n_cls)
    node.TVP.TAU = 0.07  # softmax temperature of the weights over the top-K scores
    node.LOSS = CN()
    node.LOSS.SYMMETRIC = False  # add the text-to-image cross-entropy over the batch (0 with batch 1)
    node.PREC = "fp16"  # one of fp32, fp16, amp, bf16 (fp16/amp fall back to fp32 on the CPU)
    node.TEXT_CHUNK = 4096  # max (image, class) prompts per text-encoder pass; 0 = all at once
    return node


def add_project_config(cfg: CN) -> CN:
    """Extend a Dassl default config in place with this project's keys and trainer nodes."""
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # all, base or new (the base-to-new protocol)
    cfg.MODEL.BACKBONE.CACHE_DIR = ""  # download folder for named CLIP models ("" = $CLIP_CACHE_DIR or ~/.cache/clip)
    cfg.MODEL.FEATURE_CACHE = True  # reuse frozen test-set image features across runs (clipprompt/feature_cache.py)
    cfg.MODEL.FEATURE_CACHE_DIR = ""  # "" = $CLIPPROMPT_FEATURE_CACHE or ~/.cache/clipprompt/features
    cfg.MODEL.FUSED_ATTENTION = True  # attention through scaled_dot_product_attention (False: CLIP's own path)
    cfg.DATALOADER.SKIP_BAD_IMAGES = False  # unreadable image: stop with its path (False) or skip it (True)
    from . import models  # noqa: F401  (registers every method's options)

    for name, options in OPTIONS.items():
        cfg.TRAINER[name] = options.to_node()
    for name, make in TRAINER_CONFIGS.items():
        cfg.TRAINER[name] = make()
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


def check_precision(value: str, node_name: str) -> str:
    if str(value).lower() not in PRECISIONS:
        raise ConfigError(f"TRAINER.{node_name}.PREC is {value!r}; use one of {', '.join(PRECISIONS)}.")
    return str(value).lower()
