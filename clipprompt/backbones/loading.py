"""Load a CLIP model from `MODEL.BACKBONE.NAME`: which library, which weights.

- one of `clip.available_models()` (`ViT-B/16`, `RN50`, ...: downloaded once into a cache folder)
  or a path to a checkpoint: an OpenAI JIT archive or a plain state dict. Either way the model is
  rebuilt with `clip.model.build_model`, so every trainer sees the same eager `clip.model.CLIP`;
- `openclip:<ARCHITECTURE>:<WEIGHTS>`: an open_clip model, loaded by open_clip itself
  (`clipprompt.backbones.openclip`, the `[openclip]` extra).

Methods never see the library: `interface.as_backbone` gives them the encoders.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

from . import openclip
from ._clip import clip, clip_api, clip_model
from ..errors import UserError

CACHE_ENV = "CLIP_CACHE_DIR"


class BackboneError(UserError):
    """A backbone name or checkpoint that cannot give a CLIP model."""


@contextlib.contextmanager
def teacher_backbone_errors(key: str = "TRAINER.PROMPTKD.TEACHER_BACKBONE") -> Iterator[None]:
    """A second CLIP (PromptKD's teacher) fails with the same one-line errors as MODEL.BACKBONE.NAME,
    prefixed with the key that named it."""
    try:
        yield
    except BackboneError as exc:
        raise BackboneError(f"Teacher ({key}): {exc}") from None


def default_cache_dir() -> str:
    """Where named models are downloaded: `$CLIP_CACHE_DIR`, else `~/.cache/clip` (clip's own)."""
    return os.environ.get(CACHE_ENV) or os.path.expanduser("~/.cache/clip")


def resolve_checkpoint(name: str, cache_dir: str | None = None) -> str:
    """Return a local file for `name`, downloading a published model on first use."""
    if openclip.is_openclip_name(name):
        return openclip.resolve_weights(name, cache_dir)
    path = Path(os.path.expanduser(str(name)))
    if path.is_file():
        return str(path)
    if name in clip.available_models():
        return download_named_model(name, cache_dir or default_cache_dir())
    raise BackboneError(
        f"MODEL.BACKBONE.NAME {name!r} is neither a CLIP model name nor an existing file. "
        f"Known names: {', '.join(clip.available_models())}; or give the path to a checkpoint file, "
        "or an open_clip model as openclip:<ARCHITECTURE>:<WEIGHTS>."
    )


_VERIFIED: dict[tuple[str, str], str] = {}  # (name, cache) -> file whose checksum this process checked


def download_named_model(name: str, cache_dir: str) -> str:
    """The cached file of published model `name`, downloaded first if it is not there.

    clip's own `_download` checks the SHA-256 that is part of the URL. A new download goes to a
    temporary folder inside the cache and is moved into place whole, so an interrupted one never
    leaves a partial file under the final name. A failure (offline, proxy, full disk, checksum)
    is one line with the URL, the cache folder and how to use a local file instead.
    """
    known = _VERIFIED.get((name, cache_dir))
    if known and os.path.isfile(known):  # validation resolved it before the trainer loads it: hash once
        return known
    _VERIFIED[(name, cache_dir)] = path = _download_named_model(name, cache_dir)
    return path


def _download_named_model(name: str, cache_dir: str) -> str:
    url = clip_api._MODELS[name]
    target = os.path.join(cache_dir, os.path.basename(url))
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as exc:
        raise BackboneError(
            f"Cannot create the CLIP cache folder {cache_dir} ({exc.strerror or exc}); set "
            f"MODEL.BACKBONE.CACHE_DIR or ${CACHE_ENV} to a writable folder, or MODEL.BACKBONE.NAME to a local file."
        ) from None
    try:
        if os.path.isfile(target):
            return clip_api._download(url, cache_dir)  # verifies the checksum; re-downloads a damaged file
        staging = tempfile.mkdtemp(prefix=".download-", dir=cache_dir)
        try:
            os.replace(clip_api._download(url, staging), target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target
    except (OSError, http.client.HTTPException, RuntimeError) as exc:  # URLError is an OSError
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise BackboneError(
            f"Cannot download CLIP {name} from {url} into {cache_dir} ({type(exc).__name__}: {reason}). "
            f"Without internet access, download that file elsewhere and copy it into {cache_dir} "
            f"(MODEL.BACKBONE.CACHE_DIR or ${CACHE_ENV} choose the folder), or set MODEL.BACKBONE.NAME "
            "to the path of a local CLIP checkpoint file."
        ) from None


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Read CLIP weights from a JIT archive or a (possibly wrapped) plain state dict, on the CPU."""
    if _is_torchscript(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, not gone
            return torch.jit.load(path, map_location="cpu").state_dict()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle, not a torch file at all
        raise BackboneError(
            f"Cannot read CLIP weights from {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}. "
            "Expected an OpenAI CLIP JIT archive or a state dict saved with torch.save; "
            "the file may be truncated (delete it to re-download a named model)."
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or "token_embedding.weight" not in obj:
        raise BackboneError(
            f"{path} does not hold CLIP weights (no 'token_embedding.weight' key); "
            "expected the state dict of a clip.model.CLIP."
        )
    return obj


def _is_torchscript(path: str) -> bool:
    """OpenAI's JIT archives are zip files with TorchScript code inside; state dicts have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def build_clip(state_dict: dict[str, torch.Tensor]) -> clip_model.CLIP:
    """Build an eager CLIP in fp32 with the checkpoint's exact values.

    `build_model` infers the shapes and returns fp16 weights; the weights are loaded again
    into the fp32 model so that an fp32 checkpoint is not rounded through fp16.
    """
    weights = {k: v for k, v in state_dict.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    try:
        model = clip_model.build_model(dict(state_dict)).float()
        model.load_state_dict(weights)
    except (KeyError, RuntimeError) as exc:
        raise BackboneError(f"The checkpoint is not a complete CLIP state dict: {exc}") from None
    return model.eval()


def load_clip(
    name: str,
    *,
    cache_dir: str | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """Load CLIP `name` (model name, file or open_clip name) onto `device`; `dtype` float16 uses the
    library's own recipe. Returns the library's model (`clip.model.CLIP` or open_clip's CLIP)."""
    if openclip.is_openclip_name(name):
        return openclip.load(name, cache_dir, device, dtype)
    model = build_clip(read_state_dict(resolve_checkpoint(name, cache_dir))).to(device)
    if dtype == torch.float16:
        clip_model.convert_weights(model)  # matmul weights in fp16, LayerNorms and embeddings in fp32
    elif dtype != torch.float32:
        raise ValueError(f"CLIP weights are kept in float32 or float16, not {dtype}; use autocast for bf16")
    return model
