import os
import warnings

import pytest
import torch

from clipprompt.backbones.loading import BackboneError, load_clip, read_state_dict, resolve_checkpoint
from clipprompt.backbones.precision import resolve_precision
from clipprompt.backbones.random_clip import PRESETS, build_random_clip


def test_state_dict_file_round_trip_is_exact(tiny_clip_path):
    reference = build_random_clip("tiny", seed=0).state_dict()
    loaded = load_clip(tiny_clip_path).state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)


def test_jit_archive_loads_the_same_weights(tmp_path):
    model = build_random_clip("tiny", seed=1)
    path = tmp_path / "tiny_jit.pt"
    with warnings.catch_warnings():  # tracing is deprecated and chatty; OpenAI's archives are traced
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (torch.randn(1, 3, 32, 32), torch.zeros(1, 77, dtype=torch.long)), check_trace=False)
        torch.jit.save(traced, str(path))
    loaded = load_clip(str(path)).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_wrapped_state_dict_is_unwrapped(tmp_path):
    model = build_random_clip("tiny")
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    assert set(read_state_dict(str(path))) == set(model.state_dict())


def test_loaded_model_has_the_checkpoint_structure(tiny_clip_path):
    model = load_clip(tiny_clip_path)
    shape = PRESETS["tiny"]
    assert model.visual.input_resolution == shape.image_resolution
    assert len(model.transformer.resblocks) == shape.transformer_layers
    assert model.text_projection.shape == (shape.transformer_width, shape.embed_dim)
    assert model.dtype == torch.float32


def test_fp16_weights_follow_clips_recipe(tiny_clip_path):
    model = load_clip(tiny_clip_path, dtype=torch.float16)
    assert model.visual.conv1.weight.dtype == torch.float16
    assert model.ln_final.weight.dtype == torch.float32  # CLIP keeps its norms in fp32


def test_unknown_name_lists_known_models():
    with pytest.raises(BackboneError, match="neither a CLIP model name nor an existing file.*ViT-B/16"):
        resolve_checkpoint("ViT-B/99")


def test_truncated_checkpoint_gives_a_clear_error(tiny_clip_path, tmp_path):
    data = open(tiny_clip_path, "rb").read()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackboneError, match="truncated"):
        load_clip(str(path))


def test_non_clip_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(BackboneError, match="does not hold CLIP weights"):
        load_clip(str(path))


def test_cache_dir_comes_from_the_environment(monkeypatch, tmp_path):
    from clipprompt.backbones import loading as clip_loading

    calls = []

    def download(url, root):  # clip's own: the file lands in `root`
        calls.append(root)
        path = os.path.join(root, os.path.basename(url))
        open(path, "wb").close()
        return path

    monkeypatch.setenv(clip_loading.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(clip_loading.clip_api, "_download", download)
    assert resolve_checkpoint("ViT-B/16") == str(tmp_path / "ViT-B-16.pt")
    assert os.path.dirname(calls[0]) == str(tmp_path)  # a staging folder inside the cache ...
    assert os.listdir(tmp_path) == ["ViT-B-16.pt"]  # ... moved into place whole, then removed
    assert resolve_checkpoint("ViT-B/16", cache_dir=str(tmp_path / "elsewhere")) == str(tmp_path / "elsewhere" / "ViT-B-16.pt")
    assert len(calls) == 2  # each cache folder once; a second resolve in this process hashes nothing
    resolve_checkpoint("ViT-B/16")
    assert len(calls) == 2


def test_cache_folder_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    with pytest.raises(BackboneError) as info:
        resolve_checkpoint("ViT-B/16", cache_dir=str(blocker / "cache"))
    message = str(info.value)
    assert message.startswith(f"Cannot create the CLIP cache folder {blocker / 'cache'} (")
    assert "MODEL.BACKBONE.CACHE_DIR" in message and "\n" not in message


@pytest.mark.parametrize(
    "name, expected, autocast, scaler",
    [("fp32", "fp32", None, False), ("bf16", "bf16", torch.bfloat16, False)],
)
def test_precision_on_cpu(name, expected, autocast, scaler):
    precision = resolve_precision(name, "cpu")
    assert (precision.name, precision.autocast_dtype, precision.uses_grad_scaler) == (expected, autocast, scaler)


@pytest.mark.parametrize("name", ["fp16", "amp"])
def test_half_precision_falls_back_on_cpu_with_a_notice_not_a_warning(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a notice for the run to print, no Python warning
        precision = resolve_precision(name, "cpu")
    assert precision.name == "fp32" and precision.weight_dtype == torch.float32
    assert precision.fallback == (f"PREC {name} needs a CUDA device; running in fp32 on cpu instead "
                                  "(use PREC bf16 for reduced precision on the CPU).")
    assert resolve_precision("bf16", "cpu").fallback == "" and resolve_precision(name, "cuda").fallback == ""


def test_precision_on_cuda_without_a_gpu():
    fp16 = resolve_precision("fp16", "cuda")
    assert fp16.weight_dtype == torch.float16 and fp16.autocast_dtype == torch.float16 and fp16.uses_grad_scaler
    amp = resolve_precision("amp", "cuda")
    assert amp.weight_dtype == torch.float32 and amp.autocast_dtype == torch.float16


def test_unknown_precision():
    with pytest.raises(ValueError, match="fp32, fp16, amp, bf16"):
        resolve_precision("fp8", "cpu")
