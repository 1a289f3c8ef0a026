"""PromptSRC (independent deep prompts, self-regulating constraints, GPA) on the tiny CLIP."""

import math

import pytest
import torch

from clipprompt.backbones._clip import clip
from clipprompt.errors import ConfigError
from clipprompt.models import PromptSRC
from clipprompt.models.promptsrc import GaussianPromptAverage, PromptSRCOptions, gaussian_epoch_weights
from clipprompt.backbones.templates import IMAGENET_TEMPLATES
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import run_base2new_scripts

from model_checks import fast_and_slow, learned_parameters, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
LEARNED = {"ctx", "visual_ctx", "deep_text.0", "deep_text.1", "deep_visual.0", "deep_visual.1"}


def build(clip_model, classnames=BASE, **options):
    torch.manual_seed(0)
    return PromptSRC(clip_model, classnames, PromptSRCOptions(**{"prompt_depth_text": 3, "prompt_depth_vision": 3, **options}))


def test_shapes(tiny_clip, images):
    model = build(tiny_clip)
    assert model.ctx.shape == (4, 128) and model.visual_ctx.shape == (4, 128)
    assert len(model.deep_text) == len(model.deep_visual) == 2
    with torch.no_grad():
        assert model(images).shape == (4, len(BASE))
        assert model.image_features(images).shape == (4, 32)


def authors_teacher(clip_model, classnames):
    """The teacher as the authors compute it: 77-token prompts, one batch per template, one mean."""
    names = [n.replace("_", " ") for n in classnames]
    with torch.no_grad():
        per_template = [clip_model.encode_text(clip.tokenize([t.replace("{}", n) for n in names])).unsqueeze(1)
                        for t in IMAGENET_TEMPLATES]
        mean = torch.cat(per_template, dim=1).mean(dim=1)
    return mean / mean.norm(dim=-1, keepdim=True)


def test_teacher_on_the_exact_path_is_the_authors_bit_for_bit(tiny_clip):
    expected = authors_teacher(tiny_clip, BASE)
    assert len(IMAGENET_TEMPLATES) == 60
    exact = build(tiny_clip).configure(eos_cut=False, fused=False)
    assert torch.equal(exact.teacher_text_features(), expected)
    fast = build(tiny_clip)  # prompts cut after EOS, fused attention: equal up to rounding
    torch.testing.assert_close(fast.teacher_text_features(), expected, rtol=1e-5, atol=1e-6)
    # switching paths on a built model recomputes the teacher for the new path
    assert torch.equal(fast.configure(eos_cut=False, fused=False).teacher_text_features(), expected)


def test_loss_is_ce_plus_the_three_constraints(tiny_clip, images):
    model = build(tiny_clip)
    loss, parts = model.loss(images, LABELS)
    assert loss.item() == pytest.approx(parts["ce"] + parts["text_l1"] + parts["image_l1"] + parts["logits_kl"], rel=1e-5)
    weightless = build(tiny_clip, text_loss_weight=0.0, image_loss_weight=0.0)
    _, light = weightless.loss(images, LABELS)
    assert light["text_l1"] == light["image_l1"] == 0 and light["logits_kl"] == pytest.approx(parts["logits_kl"])
    with torch.no_grad():  # with no prompts at all (depth 0 on vision, zero text prompts) the image side is frozen CLIP
        plain = build(tiny_clip, prompt_depth_vision=0)
        _, p = plain.loss(images, LABELS)
    assert p["image_l1"] == pytest.approx(0, abs=1e-6)


def test_gradients_reach_exactly_the_prompts(tiny_clip, images):
    model = build(tiny_clip)
    loss, _ = model.loss(images, LABELS)
    loss.backward()
    assert {n for n, p in model.named_parameters() if p.requires_grad} == LEARNED
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (name in LEARNED), name


def test_loss_falls_on_a_tiny_task(tiny_clip, images):
    model = build(tiny_clip, text_loss_weight=1.0, image_loss_weight=1.0)
    losses = train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=1.0), 30)
    assert losses[-1] < 0.6 * losses[0]


def test_save_load_round_trip_and_eval_on_new_classes(tiny_clip, images):
    model = build(tiny_clip)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    state = model.trainable_state_dict()
    assert set(state) == LEARNED
    again, new = build(tiny_clip), build(tiny_clip, NEW)
    again.load_trainable_state_dict(state)
    new.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images))
        with new.cached_text_features():
            assert new(images).shape == (4, len(NEW))
    assert new._teacher is None  # evaluation never computes the 60-template teacher


def test_fast_paths_equal_slow_ones(tiny_clip, images):
    model = build(tiny_clip)
    fast, slow = fast_and_slow(model, images, LABELS)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name, grad in slow.grads.items():
        assert (fast.grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


def test_gaussian_epoch_weights_and_average():
    weights = gaussian_epoch_weights(20, 15, 1)
    assert sum(weights) == pytest.approx(1) and max(range(20), key=weights.__getitem__) == 14
    ratio = math.exp(-0.5)  # one std away
    assert weights[13] / weights[14] == pytest.approx(ratio) and weights[15] / weights[14] == pytest.approx(ratio)
    average = GaussianPromptAverage([0.25, 0.75])
    average.add(0, {"p": torch.tensor([4.0])})
    average.add(1, {"p": torch.tensor([8.0])})
    assert average.result()["p"].item() == 7.0
    with pytest.raises(ConfigError, match="GPA_MEAN / GPA_STD put no weight"):
        gaussian_epoch_weights(5, 1e6, 1)


def test_checkpoints_carry_the_running_gpa_sum(tiny_clip):
    model = build(tiny_clip)
    assert set(model.trainable_state_dict()) == LEARNED  # no GPA: the prompts alone
    model.prompt_average = GaussianPromptAverage([0.5, 0.5])
    model.prompt_average.add(0, model.learned_state_dict())
    state = model.trainable_state_dict()
    assert set(state) == LEARNED | {f"gpa.{name}" for name in LEARNED}
    torch.testing.assert_close(state["gpa.ctx"], 0.5 * model.ctx.detach())
    resumed = PromptSRC(tiny_clip, BASE, model.options)
    resumed.prompt_average = GaussianPromptAverage([0.5, 0.5])
    resumed.load_trainable_state_dict(state)
    torch.testing.assert_close(resumed.ctx, model.ctx)
    resumed.prompt_average.add(1, resumed.learned_state_dict())
    torch.testing.assert_close(resumed.prompt_average.result()["deep_visual.1"], model.deep_visual[1].detach())
    plain = PromptSRC(tiny_clip, NEW, model.options)  # evaluation without GPA ignores the running sum
    plain.load_trainable_state_dict(state)
    torch.testing.assert_close(plain.visual_ctx, model.visual_ctx)


def test_options_and_errors(tiny_clip):
    options = PromptSRCOptions()
    assert (options.prompt_depth_text, options.text_loss_weight, options.gpa_mean, options.gpa_std) == (9, 25.0, 15.0, 1.0)
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, prompt_depth_vision=4)
    assert str(info.value) == "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION is 4; this CLIP's image encoder has 3 blocks."
    with pytest.raises(ConfigError) as info:  # both keys too deep: both named at once
        build(tiny_clip, prompt_depth_text=5, prompt_depth_vision=4)
    assert str(info.value) == (
        "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT is 5; this CLIP's text encoder has 3 blocks; "
        "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION is 4; this CLIP's image encoder has 3 blocks."
    )
    with pytest.raises(ConfigError, match=r"TRAINER.PROMPTSRC.GPA_STD is 0.0; it must be > 0"):
        PromptSRCOptions(gpa_std=0.0).validate()


@requires_dassl
def test_trainer_checks_the_gpa_weights_before_loading_anything():
    from clipprompt.config import add_project_config, merge_from_list
    from trainers._dassl import get_cfg_default
    from trainers.promptsrc import PromptSRC as PromptSRCTrainer

    cfg = add_project_config(get_cfg_default())
    merge_from_list(cfg, ["OPTIM.MAX_EPOCH", "5", "TRAINER.PROMPTSRC.GPA_MEAN", "1e6"])
    trainer = PromptSRCTrainer.__new__(PromptSRCTrainer)  # check_cfg is the first thing Dassl's __init__ runs
    with pytest.raises(ConfigError) as info:
        trainer.check_cfg(cfg)
    assert str(info.value) == (
        "TRAINER.PROMPTSRC.GPA_MEAN / GPA_STD put no weight on epochs 1..5; move GPA_MEAN into that range or widen GPA_STD."
    )
    merge_from_list(cfg, ["TRAINER.PROMPTSRC.GPA", "False"])  # no averaging: nothing to weigh
    trainer.check_cfg(cfg)


@requires_dassl
def test_base2new_scripts_with_gpa_on_tiny_caltech101(tmp_path, tiny_clip_path):
    state = run_base2new_scripts(
        "promptsrc", "PromptSRC", tmp_path, tiny_clip_path,
        "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "3", "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "3",
        "TRAINER.PROMPTSRC.GPA_MEAN", "1.0", "TRAINER.PROMPTSRC.GPA_STD", "1.0", epochs=2,
    )
    assert set(state) == LEARNED | {f"gpa.{name}" for name in LEARNED}
    for name in LEARNED:  # the last checkpoint holds the GPA result as the prompts
        torch.testing.assert_close(state[name], state[f"gpa.{name}"])
