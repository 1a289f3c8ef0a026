"""VPT (deep visual prompts, fixed text) and IVLP (independent deep prompts on both encoders) on the tiny CLIP."""

import pytest
import torch
import torch.nn.functional as F

from clipprompt.backbones._clip import clip
from clipprompt.errors import ConfigError
from clipprompt.models import IVLP, VPT, PromptSRC
from clipprompt.models.base import hand_crafted_features, normalize
from clipprompt.models.ivlp import IVLPOptions
from clipprompt.models.promptsrc import PromptSRCOptions
from clipprompt.models.vpt import VPTOptions
from clipprompt.options import OPTIONS
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import run_base2new_scripts

from model_checks import fast_and_slow, learned_parameters, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
VPT_LEARNED = {"visual_ctx", "deep_visual.0", "deep_visual.1"}
IVLP_LEARNED = {"ctx", "deep_text.0", "deep_text.1"} | VPT_LEARNED


def build_vpt(clip_model, classnames=BASE, **options):
    torch.manual_seed(0)
    return VPT(clip_model, classnames, VPTOptions(**{"prompt_depth_vision": 3, **options}))


def build_ivlp(clip_model, classnames=BASE, **options):
    torch.manual_seed(0)
    return IVLP(clip_model, classnames, IVLPOptions(**{"prompt_depth_text": 3, "prompt_depth_vision": 3, **options}))


BUILDERS = {"VPT": (build_vpt, VPT_LEARNED), "IVLP": (build_ivlp, IVLP_LEARNED)}


def test_options_are_the_authors_recipes():
    assert OPTIONS["VPT"] is VPTOptions and OPTIONS["IVLP"] is IVLPOptions
    vpt, ivlp = VPTOptions(), IVLPOptions()
    assert (vpt.n_ctx_vision, vpt.prompt_depth_vision, vpt.template) == (8, 12, "a photo of a {}.")
    assert (ivlp.n_ctx_text, ivlp.n_ctx_vision, ivlp.prompt_depth_text, ivlp.prompt_depth_vision) == (2, 2, 12, 12)
    assert issubclass(PromptSRCOptions, IVLPOptions) and issubclass(PromptSRC, IVLP)  # PromptSRC = IVLP + its losses


def test_vpt_text_side_is_frozen_clip_on_the_fixed_prompt(tiny_clip, images):
    model = build_vpt(tiny_clip)
    with torch.no_grad():
        expected = normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {n.replace('_', ' ')}." for n in BASE])))
        torch.testing.assert_close(model.class_text_features(), expected, rtol=1e-5, atol=1e-5)
        assert model(images).shape == (4, len(BASE))
    assert [p.shape for p in [model.visual_ctx, *model.deep_visual]] == [(8, 128)] * 3
    assert set(model.state_dict()) == VPT_LEARNED | {n for n in model.state_dict() if n.startswith(("text_encoder.", "image_encoder."))}
    assert model.class_text_features() is model.class_text_features()  # computed once, not per step


def test_ivlp_shapes_and_visual_prompts_independent_of_text(tiny_clip, images):
    model = build_ivlp(tiny_clip)
    assert model.ctx.shape == (2, 128) and model.fixed_words == "of a"
    with torch.no_grad():
        text, image = model.class_text_features(), model.image_features(images)
        model.deep_text[1].add_(torch.randn_like(model.deep_text[1]))  # moves the text side only (no coupling)
        assert not torch.allclose(model.class_text_features(), text, atol=1e-4)
        torch.testing.assert_close(model.image_features(images), image)
        model.deep_visual[1].add_(torch.randn_like(model.deep_visual[1]))  # and a visual prompt the image side only
        assert not torch.allclose(model.image_features(images), image, atol=1e-4)


def test_ivlp_language_only_leaves_the_image_side_frozen(tiny_clip, images):
    model = build_ivlp(tiny_clip, n_ctx_vision=0, prompt_depth_vision=0)
    assert model.visual_ctx is None and len(model.deep_visual) == 0
    with torch.no_grad():
        expected = normalize(tiny_clip.encode_image(images))
        torch.testing.assert_close(model.image_features(images), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", BUILDERS)
def test_gradients_reach_exactly_the_prompts(tiny_clip, images, method):
    build, learned_names = BUILDERS[method]
    model = build(tiny_clip)
    loss, summary = model.loss(images, LABELS)
    torch.testing.assert_close(loss, F.cross_entropy(model(images), LABELS))  # cross-entropy only
    loss.backward()
    assert {n for n, p in model.named_parameters() if p.requires_grad} == learned_names
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (name in learned_names), name


@pytest.mark.parametrize("method,fraction", [("VPT", 0.7), ("IVLP", 0.5)])  # VPT moves the image side only
def test_loss_falls_on_a_tiny_task(tiny_clip, images, method, fraction):
    model = BUILDERS[method][0](tiny_clip)
    losses = train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=1.0), 30)
    assert losses[-1] < fraction * losses[0]


@pytest.mark.parametrize("method", BUILDERS)
def test_save_load_round_trip_and_eval_on_new_classes(tiny_clip, images, method):
    build, learned_names = BUILDERS[method]
    model = build(tiny_clip)
    with torch.no_grad():
        for p in learned_parameters(model):
            p.add_(torch.randn_like(p) * 0.1)
    state = model.trainable_state_dict()
    assert set(state) == learned_names
    again, new = build(tiny_clip), build(tiny_clip, NEW)
    again.load_trainable_state_dict(state)
    new.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images))
        with new.cached_text_features():
            assert new(images).shape == (4, len(NEW))
        torch.testing.assert_close(new.image_features(images), model.image_features(images))


@pytest.mark.parametrize("method", BUILDERS)
def test_fast_paths_equal_slow_ones(tiny_clip, images, method):
    fast, slow = fast_and_slow(BUILDERS[method][0](tiny_clip), images, LABELS)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name, grad in slow.grads.items():
        assert (fast.grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


@pytest.mark.parametrize("method", BUILDERS)
def test_half_prompts_round_to_fp16_like_the_authors_code(tiny_clip, images, method):
    build = BUILDERS[method][0]
    exact, half = build(tiny_clip), build(tiny_clip, half_prompts=True)
    with torch.no_grad():
        difference = (exact(images) - half(images)).abs().max().item()
    assert 0 < difference < 1e-2


def test_errors_name_the_keys(tiny_clip):
    with pytest.raises(ConfigError) as info:
        build_vpt(tiny_clip, prompt_depth_vision=4)
    assert str(info.value) == "TRAINER.VPT.PROMPT_DEPTH_VISION is 4; this CLIP's image encoder has 3 blocks."
    with pytest.raises(ConfigError, match=r"TRAINER.VPT.TEMPLATE 'a photo' has no '\{\}' for the class name"):
        VPTOptions(template="a photo").validate()
    with pytest.raises(ConfigError) as info:
        build_ivlp(tiny_clip, prompt_depth_text=4, prompt_depth_vision=5)
    assert str(info.value) == (
        "TRAINER.IVLP.PROMPT_DEPTH_TEXT is 4; this CLIP's text encoder has 3 blocks; "
        "TRAINER.IVLP.PROMPT_DEPTH_VISION is 5; this CLIP's image encoder has 3 blocks."
    )
    with pytest.raises(ConfigError) as info:
        IVLPOptions(n_ctx_vision=0).validate()
    assert str(info.value) == (
        "TRAINER.IVLP.N_CTX_VISION is 0 with PROMPT_DEPTH_VISION 12; give visual prompt tokens, "
        "or PROMPT_DEPTH_VISION 0 for text prompts only."
    )


def test_vpt_fixed_features_follow_the_template_and_give_clips_bits_on_the_exact_path(tiny_clip):
    model = build_vpt(tiny_clip, template="itap of a {}.").configure(eos_cut=False, fused=False)
    with torch.no_grad():
        expected = normalize(tiny_clip.encode_text(clip.tokenize([f"itap of a {n.replace('_', ' ')}." for n in BASE])))
    assert torch.equal(model.class_text_features(), expected)
    torch.testing.assert_close(hand_crafted_features(model.text_encoder, BASE, "itap of a {}."), expected)


# ---- Dassl end to end -------------------------------------------------------------------------


@requires_dassl
@pytest.mark.parametrize("method,trainer,overrides", [
    ("vpt", "VPT", ["TRAINER.VPT.PROMPT_DEPTH_VISION", "3"]),
    ("ivlp", "IVLP", ["TRAINER.IVLP.PROMPT_DEPTH_TEXT", "3", "TRAINER.IVLP.PROMPT_DEPTH_VISION", "3"]),
])
def test_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path, method, trainer, overrides):
    state = run_base2new_scripts(method, trainer, tmp_path, tiny_clip_path, *overrides)
    assert set(state) == BUILDERS[trainer][1]
