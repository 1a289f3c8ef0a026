"""HiCroPL (deep prompts on both encoders mapped across the towers, fused with frozen CLIP) on the tiny CLIP."""

import json

import pytest
import torch
import torch.nn.functional as F

from clipprompt.backbones._clip import clip
from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.errors import ConfigError, UserError
from clipprompt.models import HiCroPL
from clipprompt.models.base import normalize
from clipprompt.models.hicropl import HiCroPLOptions
from clipprompt.testing import make_tiny_dataset, make_tiny_descriptions
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import TINY_OVERRIDES, run_base2new_scripts, train_in_process

from model_checks import fast_and_slow, learned_parameters, reload_and_evaluate_new_classes, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
DEPTH, CROSS = 3, 2  # blocks 0, 1: text -> vision; block 2: vision -> text
MODULES = {
    f"{prefix}.{name}"
    for prefix in ("text_proxies.0", "text_proxies.1", "visual_proxies.0")
    for name in ("attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
                 "ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias")
} | {
    f"{mapper}.{name}"
    for mapper in ("text_to_visual", "visual_to_text")
    for name in ("attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
                 "linear_q.weight", "linear_q.bias", "linear_k.weight", "linear_k.bias", "linear_v.weight",
                 "linear_v.bias", "ln_1.weight", "ln_1.bias", "ffn.0.weight", "ffn.0.bias", "ffn.2.weight",
                 "ffn.2.bias", "ln_2.weight", "ln_2.bias")
}
PROMPTS = {"ctx", "deep_text.0", "deep_text.1", "visual_prompts.0", "visual_prompts.1", "visual_prompts.2",
           "text_proxy_tokens.0", "text_proxy_tokens.1", "visual_proxy_tokens.0"}
LEARNED = PROMPTS | MODULES


def descriptions(classnames):
    return {n: [f"a photo of a {n.replace('_', ' ')}.", f"a blurry photo of the {n.replace('_', ' ')}."]
            for n in classnames}


def build(clip_model, classnames=BASE, **options):
    torch.manual_seed(0)
    return HiCroPL(clip_model, classnames,
                   HiCroPLOptions(**{"prompt_depth": DEPTH, "cross_layer": CROSS, "lambd": 2.0, **options}),
                   descriptions(classnames))


def perturbed(model, amount=0.1):
    with torch.no_grad():
        for p in learned_parameters(model):
            p.add_(torch.randn_like(p) * amount)
    return model


def test_learned_parameters_and_shapes(tiny_clip, images):
    model = build(tiny_clip)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == LEARNED
    text, visual = model.mapped_prompts()
    assert [t.shape for t in text] == [(2, 128)] * DEPTH and [v.shape for v in visual] == [(2, 128)] * DEPTH
    with torch.no_grad():
        assert model(images).shape == (4, len(BASE))


def test_the_knowledge_flows_text_to_vision_below_k_and_back_above(tiny_clip):
    """Visual prompts of blocks < k are mapped from every text block < k (multi-scale), the text
    prompts of blocks >= k from the visual ones there; the rest are the learned prompts themselves."""
    model = perturbed(build(tiny_clip))
    with torch.no_grad():
        text, visual = model.mapped_prompts()
        assert text[0] is model.ctx and text[1] is model.deep_text[0] and visual[2] is model.visual_prompts[2]
        assert not torch.allclose(visual[0], model.visual_prompts[0])
        assert not torch.allclose(text[2], model.deep_text[1])
        model.deep_text[0].add_(torch.randn_like(model.deep_text[0]))  # text block 1 < k: both mapped visual prompts move
        text_b, visual_b = model.mapped_prompts()
        assert not torch.allclose(visual_b[0], visual[0]) and not torch.allclose(visual_b[1], visual[1])
        torch.testing.assert_close(text_b[2], text[2])  # the back flow reads the visual prompts >= k only
        model.visual_prompts[2].add_(torch.randn_like(model.visual_prompts[2]))  # visual block 2 >= k: the text there moves
        text_c, visual_c = model.mapped_prompts()
        assert not torch.allclose(text_c[2], text_b[2])
        torch.testing.assert_close(visual_c[0], visual_b[0])


def test_features_are_fused_with_frozen_clip_and_the_descriptions(tiny_clip, images):
    model = perturbed(build(tiny_clip))
    with torch.no_grad():
        per_class = []
        for name in BASE:
            sentences = normalize(tiny_clip.encode_text(clip.tokenize(descriptions(BASE)[name])))
            per_class.append(normalize(sentences.mean(dim=0)))
        fixed = torch.stack(per_class)
        torch.testing.assert_close(model.fixed_text_features(), fixed, rtol=1e-5, atol=1e-6)
        text, visual = model.mapped_prompts()
        prompted_text = normalize(model.encode_class_text(text[1:]))
        torch.testing.assert_close(model.class_text_features(), normalize(prompted_text + fixed), rtol=1e-5, atol=1e-6)
        frozen = normalize(tiny_clip.encode_image(images))
        image, _, frozen_ours = model.features(images)
        torch.testing.assert_close(frozen_ours, frozen, rtol=1e-5, atol=1e-6)
        prompted = normalize(model.raw_prompted_images(images, visual))
        torch.testing.assert_close(image, normalize(prompted + frozen), rtol=1e-5, atol=1e-6)


def test_loss_is_cross_entropy_plus_lambda_times_both_distillations(tiny_clip, images):
    model = perturbed(build(tiny_clip))
    loss, summary = model.loss(images, LABELS)
    with torch.no_grad():
        image, text, frozen = model.features(images)
        logits = model.logit_scale * image @ text.t()
        ce = F.cross_entropy(logits, LABELS)
        text_term = 1 - (text * model.fixed_text_features()).sum(-1).mean()
        image_term = 1 - (image * frozen).sum(-1).mean()
    torch.testing.assert_close(loss.detach(), ce + 2.0 * (text_term + image_term), rtol=1e-5, atol=1e-6)
    assert summary["ce"] == pytest.approx(ce.item(), rel=1e-5)
    assert summary["text_distill"] == pytest.approx(text_term.item(), rel=1e-4, abs=1e-6)
    assert summary["image_distill"] == pytest.approx(image_term.item(), rel=1e-4, abs=1e-6)


def test_gradients_reach_every_learned_parameter_and_nothing_of_clip(tiny_clip, images):
    model = perturbed(build(tiny_clip))
    loss, _ = model.loss(images, LABELS)
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_in_place_mapping_reproduces_the_authors_forward(tiny_clip, images):
    """Mapped values overwrite the prompts at every forward (evaluation too); no gradient reaches the
    mappers or proxies; the visual prompts of all blocks (and each tower's proxy tokens) are one tensor."""
    model = build(tiny_clip, in_place_mapping=True)
    first = model.visual_prompts[0]
    assert all(p.data_ptr() == first.data_ptr() for p in model.visual_prompts)
    assert model.text_proxy_tokens[0].data_ptr() == model.text_proxy_tokens[1].data_ptr()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    paper = build(tiny_clip)
    paper.load_trainable_state_dict(before)
    with torch.no_grad():
        expected_text, expected_visual = paper.mapped_prompts()
    loss, _ = model.loss(images, LABELS)
    loss.backward()
    # all visual prompts took the value mapped for the last text->vision block (the back flow then reads
    # that value at block 2 too); the text prompt of block 2 took its mapped value
    for p in model.visual_prompts:
        torch.testing.assert_close(p.detach(), expected_visual[CROSS - 1])
    with torch.no_grad():
        paper.visual_prompts[2].copy_(expected_visual[CROSS - 1])
        torch.testing.assert_close(model.deep_text[1].detach(), paper.mapped_prompts()[0][2])
        assert not torch.allclose(model.deep_text[1], expected_text[2])
    torch.testing.assert_close(model.ctx.detach(), before["ctx"])
    assert {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None} == (
        MODULES | {"text_proxy_tokens.0", "text_proxy_tokens.1", "visual_proxy_tokens.0"})
    assert model.class_text_features() is None  # prompts change per forward: no cached text features
    with torch.no_grad():
        after_one = model.visual_prompts[0].detach().clone()
        model(images)
    assert not torch.allclose(model.visual_prompts[0], after_one)  # an evaluation batch moves them again


def test_half_prompts_rounds_the_fixed_text_features_added(tiny_clip):
    model = perturbed(build(tiny_clip, half_prompts=True))
    with torch.no_grad():
        text, _ = model.mapped_prompts()
        raw = model.encode_class_text(text[1:])
        fixed = model.fixed_text_features()
        torch.testing.assert_close(model.class_text_features(), normalize(normalize(raw) + fixed.half().float()))
        assert not torch.equal(fixed.half().float(), fixed)


def test_loss_falls_on_a_tiny_task(tiny_clip, images):
    model = build(tiny_clip)
    losses = train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=0.01), 25)
    assert losses[-1] < 0.7 * losses[0]


def test_save_load_round_trip_and_eval_on_new_classes(tiny_clip, images):
    model = perturbed(build(tiny_clip))
    new = build(tiny_clip, NEW)
    reload_and_evaluate_new_classes(model, build(tiny_clip), new, images, LEARNED)
    with torch.no_grad():
        torch.testing.assert_close(new.features(images)[0], model.features(images)[0])


def test_fast_paths_equal_slow_ones(tiny_clip, images):
    fast, slow = fast_and_slow(perturbed(build(tiny_clip)), images, LABELS)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name in slow.grads:
        torch.testing.assert_close(fast.grads[name], slow.grads[name], rtol=1e-4, atol=1e-6)


def test_errors_name_the_keys(tiny_clip):
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, prompt_depth=3, cross_layer=3)
    assert str(info.value) == (
        "TRAINER.HICROPL.CROSS_LAYER is 3 with PROMPT_DEPTH 3; it must be smaller (blocks 0..CROSS_LAYER-1 take "
        "text->vision, the rest up to PROMPT_DEPTH vision->text).")
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, prompt_depth=4)
    assert str(info.value) == "TRAINER.HICROPL.PROMPT_DEPTH is 4; this CLIP has 3 blocks."
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, mapper_heads=3)
    assert str(info.value) == "TRAINER.HICROPL.MAPPER_HEADS is 3; it must divide both widths of this CLIP (128, 128)."
    with pytest.raises(ConfigError) as info:
        HiCroPL(build_random_clip("tiny-rn", seed=0), BASE, HiCroPLOptions(prompt_depth=2, cross_layer=1))
    assert str(info.value).startswith("HiCroPL prompts the image encoder's tokens")


@requires_dassl
def test_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path):
    state = run_base2new_scripts("hicropl", "HiCroPL", tmp_path, tiny_clip_path, "TRAINER.HICROPL.PROMPT_DEPTH",
                                 str(DEPTH), "TRAINER.HICROPL.CROSS_LAYER", str(CROSS), descriptions=True)
    assert set(state) == LEARNED


@requires_dassl
@pytest.mark.parametrize("described", [0, 2])  # no prepared file; a file without two of the four classes
def test_train_py_refuses_missing_descriptions_in_one_line(tmp_path, tiny_clip_path, capsys, described):
    """HiCroPL reads the descriptions `prepare --descriptions coprompt` fetched (CoPrompt's files): without
    them, or without a class, the run stops before training, naming the prepare command."""
    data = tmp_path / "data"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=3)
    if described:
        make_tiny_descriptions(data, "Caltech101", num_classes=described)
    status = train_in_process([
        "--root", str(data), "--trainer", "HiCroPL", "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/HiCroPL/vit_b16_c2_ep50_batch32_16ctx.yaml",
        "--output-dir", str(tmp_path / "out"), "MODEL.BACKBONE.NAME", tiny_clip_path, *TINY_OVERRIDES,
        "DATASET.NUM_SHOTS", "1", "TRAINER.HICROPL.PROMPT_DEPTH", "3", "TRAINER.HICROPL.CROSS_LAYER", "2",
    ])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and err.strip().count("\n") == 0
    assert err.startswith("error: ") and "python -m clipprompt.data.prepare caltech101" in err
    assert "--descriptions coprompt" in err
    assert ("none for" in err) == bool(described)

