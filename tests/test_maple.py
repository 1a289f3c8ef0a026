"""MaPLe (deep prompts on both encoders, visual ones projected from text ones) on the tiny CLIP."""

import pytest
import torch

from clipprompt.backbones._clip import clip
from clipprompt.errors import ConfigError
from clipprompt.models import MaPLe
from clipprompt.models.base import normalize
from clipprompt.models.maple import MaPLeOptions
from clipprompt.options import OPTIONS
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import run_base2new_scripts

from model_checks import fast_and_slow, learned_parameters, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
LEARNED = {"ctx", "proj.weight", "proj.bias", "deep_text.0", "deep_text.1"} | {
    f"deep_proj.{k}.{p}" for k in (0, 1) for p in ("weight", "bias")
}


def build(clip_model, classnames=BASE, **options):
    torch.manual_seed(0)
    return MaPLe(clip_model, classnames, MaPLeOptions(**{"prompt_depth": 3, **options}))


def test_shapes_and_prompt_text(tiny_clip, images):
    model = build(tiny_clip)
    assert model.ctx.shape == (2, 128) and len(model.deep_text) == 2 and len(model.deep_proj) == 2
    assert model.fixed_words == "of a"  # "a photo" is learned, "of a" stays words before the class name
    expected = clip.tokenize([f"a photo of a {name.replace('_', ' ')}." for name in BASE])
    assert torch.equal(model.prompts.cut_tokens[:, 3:], expected[:, 3 : model.prompts.length])
    with torch.no_grad():
        assert model(images).shape == (4, len(BASE))
        assert [p.shape for p in model.visual_prompts()] == [(2, 128)] * 3


def test_at_depth_one_with_init_words_the_text_side_is_clip(tiny_clip):
    model = build(tiny_clip, prompt_depth=1)
    with torch.no_grad():
        expected = normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {n.replace('_', ' ')}." for n in BASE])))
        torch.testing.assert_close(model.class_text_features(), expected, rtol=1e-5, atol=1e-5)


def test_deep_prompts_change_both_encoders_and_couple_them(tiny_clip, images):
    model = build(tiny_clip)
    with torch.no_grad():
        text, image = model.class_text_features(), model.image_features(images)
        shift = torch.randn_like(model.deep_text[1])  # (not a constant: every LayerNorm would remove it)
        model.deep_text[1].add_(shift)  # a deeper text prompt moves the text side and, through F_2, the image side
        assert not torch.allclose(model.class_text_features(), text, atol=1e-4)
        assert not torch.allclose(model.image_features(images), image, atol=1e-4)
        model.deep_text[1].sub_(shift)
        model.deep_proj[1].bias.add_(torch.randn_like(model.deep_proj[1].bias))  # a coupling layer moves only the image side
        torch.testing.assert_close(model.class_text_features(), text)
        assert not torch.allclose(model.image_features(images), image, atol=1e-4)


def test_gradients_reach_exactly_the_prompts_and_coupling_layers(tiny_clip, images):
    model = build(tiny_clip)
    loss, _ = model.loss(images, LABELS)
    loss.backward()
    learned = {n for n, p in model.named_parameters() if p.requires_grad}
    assert learned == LEARNED
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (name in LEARNED), name


def test_loss_falls_on_a_tiny_task(tiny_clip, images):
    model = build(tiny_clip)
    losses = train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=1.0), 30)
    assert losses[-1] < 0.5 * losses[0]


def test_save_load_round_trip_and_eval_on_new_classes(tiny_clip, images):
    model = build(tiny_clip)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    state = model.trainable_state_dict()
    assert set(state) == LEARNED
    again = build(tiny_clip)
    again.load_trainable_state_dict(state)
    new = build(tiny_clip, NEW)
    new.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images))
        with new.cached_text_features():
            logits = new(images)
    assert logits.shape == (4, len(NEW))
    with torch.no_grad():  # same prompts, so the image side of the new-class model is the trained one's
        torch.testing.assert_close(new.image_features(images), model.image_features(images))


def test_fast_paths_equal_slow_ones(tiny_clip, images):
    model = build(tiny_clip)
    fast, slow = fast_and_slow(model, images, LABELS)
    assert model.prompts.length == 77
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name, grad in slow.grads.items():
        assert (fast.grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


def test_half_prompts_round_to_fp16_like_the_authors_code(tiny_clip, images):
    exact, half = build(tiny_clip), build(tiny_clip, half_prompts=True)
    with torch.no_grad():
        rounded = half.visual_prompts()[1].half().float()
        assert not torch.equal(exact.visual_prompts()[1], rounded)
        difference = (exact(images) - half(images)).abs().max().item()
    assert 0 < difference < 1e-2


def test_options_and_errors(tiny_clip):
    assert OPTIONS["MAPLE"] is MaPLeOptions and MaPLeOptions().prompt_depth == 9 and MaPLeOptions().n_ctx == 2
    with pytest.raises(ConfigError, match=r"TRAINER.MAPLE.PROMPT_DEPTH is 9; this CLIP has 3 blocks"):
        build(tiny_clip, prompt_depth=9)
    with pytest.raises(ConfigError, match=r"TRAINER.MAPLE.CTX_INIT 'a photo' has 2 tokens, fewer than the 3 prompt tokens"):
        build(tiny_clip, n_ctx=3, ctx_init="a photo")
    random = build(tiny_clip, n_ctx=3, ctx_init="")
    assert random.fixed_words == "" and random.ctx.shape == (3, 128)


# ---- Dassl end to end -------------------------------------------------------------------------


@requires_dassl
def test_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path):
    state = run_base2new_scripts("maple", "MaPLe", tmp_path, tiny_clip_path, "TRAINER.MAPLE.PROMPT_DEPTH", "3")
    assert set(state) == LEARNED
