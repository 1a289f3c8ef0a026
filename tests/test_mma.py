"""MMA (multi-modal adapters beside the higher blocks of both encoders) on the tiny CLIP."""

import pytest
import torch
import torch.nn.functional as F

from clipprompt.backbones._clip import clip
from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.errors import ConfigError
from clipprompt.models import MMA
from clipprompt.models.base import normalize
from clipprompt.models.mma import MMAOptions
from clipprompt.options import OPTIONS
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.protocol_scripts import TINY_OVERRIDES, run_base2new_scripts, train_in_process

from model_checks import fast_and_slow, learned_parameters, reload_and_evaluate_new_classes, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
LEARNED = {
    f"{side}_adapter.{i}.{part}.{kind}"
    for side in ("text", "visual") for i in (2, 3) for part in ("down.0", "up") for kind in ("weight", "bias")
} | {f"shared_adapter.{i}.0.{kind}" for i in (2, 3) for kind in ("weight", "bias")}


def build(clip_model, classnames=BASE, **options):
    torch.manual_seed(0)
    return MMA(clip_model, classnames, MMAOptions(**{"adapter_start": 2, "adapter_end": 3, **options}))


def perturbed(model, amount=0.1):
    """Adapters moved away from their start, so that every path through them is exercised."""
    with torch.no_grad():
        for p in learned_parameters(model):
            p.add_(torch.randn_like(p) * amount)
    return model


def test_options_are_the_authors_recipe():
    assert OPTIONS["MMA"] is MMAOptions
    o = MMAOptions()
    assert (o.text_ctx_init, o.adapter_start, o.adapter_end, o.adapter_dim, o.adapter_scale) == ("a photo of a", 5, 12, 32, 0.001)
    assert o.scale_gradients and o.prec == "amp"


def test_shapes_and_the_shared_projection_couples_both_sides(tiny_clip, images):
    model = build(tiny_clip)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == LEARNED
    assert model.text_adapter["2"].down[0].weight.shape == (32, 128)
    assert model.visual_adapter["3"].up.weight.shape == (128, 32)
    assert model.shared_adapter["2"][0].weight.shape == (32, 32)
    perturbed(model)
    with torch.no_grad():
        assert model(images).shape == (4, len(BASE))
        text, image = model.class_text_features(), model.image_features(images)
        model.shared_adapter["3"][0].bias.add_(1.0)  # one shared projection moves both encoders
        assert not torch.allclose(model.class_text_features(), text, atol=1e-4)
        assert not torch.allclose(model.image_features(images), image, atol=1e-4)
        text, image = model.class_text_features(), model.image_features(images)
        model.visual_adapter["2"].up.weight.add_(torch.randn_like(model.visual_adapter["2"].up.weight))  # a visual adapter the image side only
        torch.testing.assert_close(model.class_text_features(), text)
        assert not torch.allclose(model.image_features(images), image, atol=1e-4)


def test_adapters_are_branches_beside_the_blocks(tiny_clip, images):
    """Block i's output gains s * up(shared(down(ln_1(block input)))), computed here by hand."""
    model = perturbed(build(tiny_clip, adapter_start=1, adapter_end=1, adapter_scale=0.5))
    visual = tiny_clip.visual
    with torch.no_grad():
        x = visual.conv1(images).flatten(2).transpose(1, 2)
        x = torch.cat([visual.class_embedding.expand(4, 1, -1), x], dim=1) + visual.positional_embedding
        x = visual.ln_pre(x).transpose(0, 1)
        blocks = visual.transformer.resblocks
        adapter, shared = model.visual_adapter["1"], model.shared_adapter["1"]
        x = blocks[0](x) + 0.5 * adapter.up(shared(adapter.down(blocks[0].ln_1(x))))
        for block in blocks[1:]:
            x = block(x)
        expected = normalize(visual.ln_post(x[0]) @ visual.proj)
        torch.testing.assert_close(model.configure(fused=False).image_features(images), expected, rtol=1e-5, atol=1e-6)


def test_at_the_start_the_model_is_close_to_zero_shot_clip(tiny_clip, images):
    model = build(tiny_clip)
    prompts = clip.tokenize([f"a photo of a {n.replace('_', ' ')}." for n in BASE])
    with torch.no_grad():
        text = normalize(tiny_clip.encode_text(prompts))
        image = normalize(tiny_clip.encode_image(images))
        # s = 0.001: the adapters move the features by a little
        torch.testing.assert_close(model.class_text_features(), text, rtol=0, atol=5e-3)
        torch.testing.assert_close(model.image_features(images), image, rtol=0, atol=5e-3)
        assert not torch.equal(model.image_features(images), image)


def test_gradients_reach_exactly_the_adapters(tiny_clip, images):
    model = build(tiny_clip)
    loss, summary = model.loss(images, LABELS)
    torch.testing.assert_close(loss, F.cross_entropy(model(images), LABELS))  # cross-entropy only
    loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (name in LEARNED), name


def test_scale_gradients_divides_the_adapters_gradients_by_the_scale(tiny_clip, images):
    """The authors' gradient-scale layers: the adapters' gradients are 1/s times the true ones."""
    grads = {}
    for rescale in (True, False):
        model = perturbed(build(tiny_clip, adapter_scale=0.25, scale_gradients=rescale))
        model.loss(images, LABELS)[0].backward()
        grads[rescale] = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    for name in LEARNED:
        torch.testing.assert_close(grads[True][name], grads[False][name] / 0.25, rtol=1e-4, atol=1e-7)


def test_adapter_start_zero_adapts_the_inputs_without_gradient_scaling(tiny_clip, images):
    grads = {}
    for rescale in (True, False):
        model = perturbed(build(tiny_clip, adapter_start=0, adapter_scale=0.25, scale_gradients=rescale))
        assert {"text_adapter.0.up.weight", "visual_adapter.0.up.weight"} <= set(model.trainable_state_dict())
        model.loss(images, LABELS)[0].backward()
        grads[rescale] = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    for name in ("text_adapter.0.up.weight", "visual_adapter.0.up.weight", "shared_adapter.0.0.weight"):
        torch.testing.assert_close(grads[True][name], grads[False][name], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(grads[True]["shared_adapter.2.0.weight"], grads[False]["shared_adapter.2.0.weight"] / 0.25)


def test_loss_falls_on_a_tiny_task(tiny_clip, images):
    model = build(tiny_clip)
    losses = train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=0.006), 30)
    assert losses[-1] < 0.7 * losses[0]


def test_save_load_round_trip_and_eval_on_new_classes(tiny_clip, images):
    model = perturbed(build(tiny_clip))
    new = build(tiny_clip, NEW)
    reload_and_evaluate_new_classes(model, build(tiny_clip), new, images, LEARNED)
    with torch.no_grad():
        torch.testing.assert_close(new.image_features(images), model.image_features(images))


def test_frozen_text_blocks_run_once_with_the_same_bits(tiny_clip):
    """The text blocks before the first adapted one see only the fixed prompt: computed once."""
    model = perturbed(build(tiny_clip))  # adapters on blocks 2..3: block 1 is frozen
    assert model.frozen_text_blocks == 1
    tokens, prefix = model.frozen_text_prefix()
    features = model.class_text_features()
    assert model.frozen_text_prefix()[1] is prefix
    encoder = model.text_encoder
    every_block = encoder(encoder.embed(tokens), tokens.argmax(-1), parallel=model.branches(model.text_adapter, encoder.blocks))
    assert torch.equal(features, normalize(every_block))
    model.configure(eos_cut=False)  # another path: computed again
    assert model.frozen_text_prefix()[0].shape[1] == 77
    assert build(tiny_clip, adapter_start=0).frozen_text_blocks == 0


def test_fast_paths_equal_slow_ones(tiny_clip, images):
    fast, slow = fast_and_slow(perturbed(build(tiny_clip)), images, LABELS)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name, grad in slow.grads.items():
        assert (fast.grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


def test_errors_name_the_keys(tiny_clip):
    with pytest.raises(ConfigError) as info:
        MMA(tiny_clip, BASE)
    assert str(info.value) == (
        "TRAINER.MMA.ADAPTER_END is 12; this CLIP's text encoder has 3 blocks and its image encoder 3, "
        "both adapted at ADAPTER_START..ADAPTER_END."
    )
    with pytest.raises(ConfigError) as info:
        MMAOptions(adapter_start=4, adapter_end=3).validate()
    assert str(info.value) == (
        "TRAINER.MMA.ADAPTER_START is 4, after ADAPTER_END 3; the adapted blocks are ADAPTER_START..ADAPTER_END."
    )
    with pytest.raises(ConfigError) as info:
        MMAOptions(adapter_scale=0).validate()
    assert str(info.value) == "TRAINER.MMA.ADAPTER_SCALE is 0: the adapters would do nothing (and their gradients divide by it)."


def test_refused_in_one_line_on_a_resnet():
    with pytest.raises(ConfigError) as info:
        MMA(build_random_clip("tiny-rn", seed=0), BASE, MMAOptions(adapter_start=1, adapter_end=1))
    assert str(info.value) == (
        "MMA prompts the image encoder's tokens, but this CLIP's image encoder is a ResNet (ModifiedResNet) "
        "(openai-resnet); use a ViT backbone, or a method whose image side is frozen: "
        "ZeroshotCLIP, CoOp, CoCoOp, KgCoOp, ProGrad, TCP."
    )


# ---- Dassl end to end -------------------------------------------------------------------------


@requires_dassl
def test_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path):
    state = run_base2new_scripts("mma", "MMA", tmp_path, tiny_clip_path, "TRAINER.MMA.ADAPTER_START", "2",
                                 "TRAINER.MMA.ADAPTER_END", "3")
    assert set(state) == LEARNED


@requires_dassl
@pytest.mark.parametrize("overrides,message", [
    ([], "TRAINER.MMA.ADAPTER_END is 12; this CLIP's text encoder has 3 blocks and its image encoder 3, "
         "both adapted at ADAPTER_START..ADAPTER_END."),
    (["TRAINER.MMA.ADAPTER_START", "3", "TRAINER.MMA.ADAPTER_END", "2"],
     "TRAINER.MMA.ADAPTER_START is 3, after ADAPTER_END 2; the adapted blocks are ADAPTER_START..ADAPTER_END."),
])
def test_train_py_refuses_bad_adapter_blocks_in_one_line(tmp_path, tiny_clip_path, capsys, overrides, message):
    data = tmp_path / "data"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=3)
    status = train_in_process([
        "--root", str(data), "--trainer", "MMA", "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/MMA/vit_b16_ep5.yaml", "--output-dir", str(tmp_path / "out"),
        "MODEL.BACKBONE.NAME", tiny_clip_path, *TINY_OVERRIDES, "DATASET.NUM_SHOTS", "1", *overrides,
    ])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.strip() == f"error: {message}"
