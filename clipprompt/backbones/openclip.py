"""open_clip (PyPI `open-clip-torch`, the `[openclip]` extra) behind the encoder interface.

Names: `MODEL.BACKBONE.NAME openclip:<ARCHITECTURE>:<WEIGHTS>`

- ARCHITECTURE: an open_clip model name (`ViT-B-16`, `ViT-L-14`, `RN50`, ...; `open_clip.list_models()`)
  or the path of a model-config JSON file (open_clip's format: `embed_dim`, `vision_cfg`, `text_cfg`),
  registered with `open_clip.add_model_config` under its file name;
- WEIGHTS: a pretrained tag of that architecture (`laion2b_s34b_b88k`; `open_clip.list_pretrained()`),
  downloaded by open_clip into its cache (MODEL.BACKBONE.CACHE_DIR, else open_clip's default: the
  Hugging Face cache, or ~/.cache/clip for URL weights), or the path of a checkpoint file.

e.g. `openclip:ViT-B-16:laion2b_s34b_b88k`, `openclip:ViT-B-32:/data/weights.pt`,
`openclip:tiny.json:tiny.pt` (what the tests build with `random_clip.save_random_openclip`).

The model is open_clip's own (`create_model(arch, pretrained=...)`); the encoders run its blocks.
Prompt learning needs what OpenAI's text tower has: a causal mask, features read at the EOS token
(pool `argmax`, or `eos` with the BPE's EOS id) and OpenAI's BPE tokenizer (the prompts are
tokenized with `clip.tokenize`, the same ids). Architectures without them (SigLIP, Hugging Face
text towers, no causal mask, `last`-token pooling, CoCa) are refused in one line. A ViT image tower
read at its class token is prompted block by block; other image towers (ResNets, attention or
average pooling) are used whole, frozen.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UserError
from .encoders import FrozenImageEncoder, ImageEncoder, TextEncoder, causal_mask
from .interface import Backbone

PREFIX = "openclip:"
BPE_VOCAB_SIZE = 49408
BPE_EOS_ID = 49407  # `<end_of_text>`, the highest id of OpenAI's BPE: argmax pooling finds it
INSTALL = 'pip install -e ".[openclip]"'
DEFAULT_CACHE = "open_clip's cache (the Hugging Face cache, or ~/.cache/clip for weights given by URL)"


class OpenCLIPError(UserError):
    """An open_clip name, architecture or checkpoint this project cannot use."""


def is_openclip_name(name: str) -> bool:
    return str(name).startswith(PREFIX)


def import_open_clip():
    try:
        import open_clip
    except ImportError:
        raise OpenCLIPError(f"open_clip backbones need the open_clip package: {INSTALL} (PyPI open-clip-torch).") from None
    return open_clip


def is_openclip_model(model: nn.Module) -> bool:
    try:
        import open_clip
    except ImportError:
        return False
    return isinstance(model, (open_clip.CLIP, open_clip.CustomTextCLIP))


def parse_name(name: str) -> tuple[str, str]:
    """(architecture, weights) of `openclip:<ARCHITECTURE>:<WEIGHTS>`."""
    arch, _, weights = str(name)[len(PREFIX):].partition(":")
    if not arch or not weights:
        raise OpenCLIPError(
            f"MODEL.BACKBONE.NAME {name!r}: an open_clip backbone is named openclip:<ARCHITECTURE>:<WEIGHTS>, "
            "e.g. openclip:ViT-B-16:laion2b_s34b_b88k (a pretrained tag) or openclip:ViT-B-16:/path/to/weights.pt."
        )
    return arch, weights


def architecture(arch: str) -> str:
    """The open_clip model name of `arch`, registering a model-config JSON file first."""
    open_clip = import_open_clip()
    path = Path(os.path.expanduser(arch))
    if arch.endswith(".json"):
        if not path.is_file():
            raise OpenCLIPError(f"The open_clip model config {arch} does not exist.")
        open_clip.add_model_config(path)
        return path.stem
    if arch.replace("/", "-") not in open_clip.list_models():
        raise OpenCLIPError(
            f"{arch!r} is not an open_clip architecture (open_clip.list_models() names them, e.g. ViT-B-16, "
            "ViT-L-14, RN50) nor a model-config .json file."
        )
    return arch.replace("/", "-")


def check_tokenizer(model_name: str) -> None:
    """The prompts are tokenized with OpenAI's BPE (`clip.tokenize`): refuse other tokenizers."""
    open_clip = import_open_clip()
    text = (open_clip.get_model_config(model_name) or {}).get("text_cfg", {})
    other = (
        text.get("hf_tokenizer_name") or text.get("hf_model_name")
        or ("siglip" in model_name.lower() and "SigLIP's tokenizer")
        or (text.get("tokenizer_kwargs") and f"tokenizer options {text['tokenizer_kwargs']}")
        or (text.get("vocab_size", BPE_VOCAB_SIZE) != BPE_VOCAB_SIZE and f"a vocabulary of {text['vocab_size']}")
    )
    if other:
        raise OpenCLIPError(
            f"open_clip {model_name} uses another tokenizer than OpenAI's BPE ({other}); prompt learning here "
            "tokenizes with OpenAI's BPE, so only CLIP-style open_clip models (ViT-B-16, ViT-L-14, RN50, ...) run."
        )


_RESOLVED: dict[tuple[str, str | None], str] = {}  # (name, cache) -> weights file found by this process


def resolve_weights(name: str, cache_dir: str | None = None) -> str:
    """The local weights file of `openclip:<ARCH>:<WEIGHTS>`, downloaded by open_clip on first use.

    A tag is resolved once per process (validation, loading and the feature cache all ask): open_clip's
    Hugging Face download asks the hub again on every call, which is slow on an offline node.
    """
    known = _RESOLVED.get((name, cache_dir))
    if known and os.path.isfile(known):
        return known
    _RESOLVED[(name, cache_dir)] = path = _resolve_weights(name, cache_dir)
    return path


def _resolve_weights(name: str, cache_dir: str | None) -> str:
    open_clip = import_open_clip()
    arch, weights = parse_name(name)
    model_name = architecture(arch)
    check_tokenizer(model_name)
    path = Path(os.path.expanduser(weights))
    if path.is_file():
        return str(path)
    pretrained = open_clip.get_pretrained_cfg(model_name, weights)
    if not pretrained:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise OpenCLIPError(
            f"{weights!r} is neither a pretrained tag of open_clip {model_name} "
            f"({', '.join(tags) if tags else 'it has none'}) nor an existing file."
        )
    try:
        return open_clip.download_pretrained(pretrained, cache_dir=cache_dir)
    except Exception as exc:  # offline, proxy, Hugging Face hub missing or refusing
        raise OpenCLIPError(
            f"Cannot download open_clip {model_name} weights {weights} from {weights_source(pretrained)} into "
            f"{cache_dir or DEFAULT_CACHE} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Without internet access, "
            f"download that file elsewhere and set MODEL.BACKBONE.NAME openclip:{arch}:/path/to/that/file."
        ) from None


def weights_source(pretrained: dict) -> str:
    """Where open_clip downloads a pretrained tag from: its Hugging Face repository file, or its URL."""
    hub = pretrained.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        return f"https://huggingface.co/{repo}/blob/main/{filename or 'open_clip_pytorch_model.bin'}"
    return pretrained.get("url") or "open_clip's pretrained config (no source given)"


def load(name: str, cache_dir: str | None = None, device: torch.device | str = "cpu",
         dtype: torch.dtype = torch.float32) -> nn.Module:
    """open_clip's own model of `openclip:<ARCH>:<WEIGHTS>`, weights loaded by `create_model(pretrained=...)`."""
    open_clip = import_open_clip()
    resolve_weights(name, cache_dir)  # errors in one line; downloads a tag into open_clip's cache
    arch, weights = parse_name(name)
    model_name = architecture(arch)
    pretrained = str(Path(os.path.expanduser(weights))) if Path(os.path.expanduser(weights)).is_file() else weights
    try:
        model = open_clip.create_model(model_name, pretrained=pretrained, cache_dir=cache_dir)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise OpenCLIPError(
            f"open_clip cannot build {model_name} with weights {weights}: {str(exc).splitlines()[0]}"
        ) from None
    backbone(model)  # refuse what prompt learning cannot use now, not after the data loaded
    model = model.to(device).eval()
    if dtype == torch.float16:
        open_clip.model.convert_weights_to_lp(model, dtype=torch.float16)  # open_clip's fp16 recipe
    elif dtype != torch.float32:
        raise ValueError(f"CLIP weights are kept in float32 or float16, not {dtype}; use autocast for bf16")
    return model


class OpenCLIPTextEncoder(TextEncoder):
    """open_clip's text tower (kept on the CLIP itself): its mask is passed to each block, sliced to L."""

    def __init__(self, model: nn.Module, fused: bool = True):
        super().__init__(model.token_embedding, model.positional_embedding, model.transformer.resblocks,
                         model.ln_final, model.text_projection, fused)
        self.batch_first = model.transformer.batch_first
        self.register_buffer("attn_mask", model.attn_mask, persistent=False)

    @property
    def sequence_first(self) -> bool:
        return not self.batch_first

    def run_exact(self, block: nn.Module, x: Tensor) -> Tensor:
        length = x.shape[1]
        mask = self.attn_mask[:length, :length] if length <= self.attn_mask.shape[0] else causal_mask(length, self.attn_mask)
        if self.batch_first:
            return block(x, attn_mask=mask)
        return block(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)


class OpenCLIPImageEncoder(ImageEncoder):
    """open_clip's VisionTransformer read at its class token (pool `tok`, no attention pooler)."""

    def __init__(self, visual: nn.Module, fused: bool = True):
        super().__init__(visual, visual.transformer.resblocks, fused)
        self.batch_first = visual.transformer.batch_first

    @property
    def input_resolution(self) -> int:
        return image_size(self.visual)

    @property
    def sequence_first(self) -> bool:
        return not self.batch_first

    def run_exact(self, block: nn.Module, x: Tensor) -> Tensor:
        if self.batch_first:
            return block(x)
        return block(x.transpose(0, 1)).transpose(0, 1)

    def readout(self, tokens: Tensor) -> Tensor:
        pooled, _ = self.visual._pool(tokens)  # open_clip's own pooling: ln_post, class token
        return pooled @ self.visual.proj if self.visual.proj is not None else pooled


def image_size(visual: nn.Module) -> int:
    size = getattr(visual, "image_size", None) or getattr(visual, "input_resolution", None)
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    if size[0] != size[1]:
        raise OpenCLIPError(f"open_clip image towers of non-square input {size} are not supported.")
    return int(size[0])


def prompts_fit(visual: nn.Module) -> str:
    """Why prompt tokens cannot be appended to this open_clip image tower ("" when they can)."""
    from open_clip.transformer import VisionTransformer

    if not isinstance(visual, VisionTransformer):
        name = type(visual).__name__
        return f"a ResNet ({name})" if name == "ModifiedResNet" else f"a {name}"
    if visual.attn_pool is not None:
        return "a ViT read out by an attention pooler"
    if visual.pool_type != "tok":
        return f"a ViT pooled by {visual.pool_type!r}, not at its class token"
    if not isinstance(visual.patch_dropout, nn.Identity):
        return "a ViT with patch dropout"
    return ""


def backbone(model: nn.Module, fused: bool = True) -> Backbone:
    """The encoders of an open_clip CLIP, or a one-line refusal naming what prompt learning lacks."""
    open_clip = import_open_clip()
    name = type(model).__name__
    if not isinstance(model, open_clip.CLIP):
        raise OpenCLIPError(f"open_clip {name} models (Hugging Face or CoCa text towers) are not supported; "
                            "use a CLIP-style open_clip model (ViT-B-16, ViT-L-14, RN50, ...).")
    if model.attn_mask is None:
        raise OpenCLIPError("This open_clip CLIP's text tower has no causal mask; prompt learning reads "
                            "features at the EOS token of a causal text encoder.")
    pool, eos = model.text_pool_type, getattr(model, "text_eos_id", None)
    if pool not in ("argmax", "eos") or (pool == "eos" and eos != BPE_EOS_ID):
        raise OpenCLIPError(f"This open_clip CLIP pools its text at {pool!r} (EOS id {eos}); prompt learning "
                            "reads features at the EOS token (text pool type argmax, or eos with OpenAI's BPE).")
    if getattr(model, "logit_bias", None) is not None:
        raise OpenCLIPError("This open_clip CLIP has a logit bias (a sigmoid-loss model); prompt learning "
                            "here uses CLIP's softmax logits.")
    visual = model.visual
    why = prompts_fit(visual)
    if why:
        image = FrozenImageEncoder(visual, image_size(visual), why, fused)
        kind = "openclip-resnet" if type(visual).__name__ == "ModifiedResNet" else "openclip-frozen"
    else:
        image, kind = OpenCLIPImageEncoder(visual, fused), "openclip-vit"
    text = OpenCLIPTextEncoder(model, fused)
    embed_dim = model.text_projection.shape[1] if isinstance(model.text_projection, Tensor) else model.text_projection.out_features
    return Backbone(kind, text, image, model.logit_scale, embed_dim)
