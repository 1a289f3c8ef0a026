"""TCP: class-aware tokens from the hand-crafted class features replace the context at one text block."""

import pytest
import torch
import torch.nn.functional as F

from clipprompt.backbones._clip import clip
from clipprompt.errors import ConfigError
from clipprompt.models import TCP
from clipprompt.models.base import normalize
from clipprompt.models.tcp import TCPOptions, authors_templates
from clipprompt.testing.markers import requires_dassl

from model_checks import fast_and_slow, learned_parameters, train_steps
from test_kgcoop import base2new_report

BASE = ["dog", "cat", "fire truck", "sea lion"]
NEW = ["owl", "red fox", "tram"]
LABELS = torch.tensor([0, 1, 2, 3])
LEARNED = {"ctx", "tke.linear1.weight", "tke.linear1.bias", "tke.linear2.weight", "tke.linear2.bias"}


def model(tiny_clip, classnames=BASE, **options):
    torch.manual_seed(0)
    return TCP(tiny_clip, classnames, TCPOptions(**{"layer": 1, **options}), template="{}, a type of pet.")


def test_defaults_and_templates_are_the_authors():
    options = TCPOptions()
    assert (options.n_ctx, options.ctx_init, options.layer, options.w, options.adam_eps) == (4, "", 8, 8.0, 1e-3)
    assert authors_templates("OxfordPets", "a photo of a {}, a type of pet.") == ("{}, a type of pet.", "a photo of a {}, a type of pet.")
    assert authors_templates("FGVCAircraft", "x {}") == ("{}, a type of aircraft.", "a photo of an aircraft {}.")
    assert authors_templates("Caltech101", "a photo of a {}.") == ("{}.", "a photo of a {}.")


def test_shapes_and_anchor(tiny_clip, images):
    tcp = model(tiny_clip)
    width = tcp.text_encoder.width
    assert tcp.ctx.shape == (4, width)
    assert tcp.class_tokens().shape == (4, 4, width)
    assert tcp.class_text_features().shape == (4, tiny_clip.text_projection.shape[1])
    assert tcp(images).shape == (4, 4)
    with torch.no_grad():
        expected = normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {n}." for n in BASE])))
    torch.testing.assert_close(tcp.anchor, expected, rtol=1e-5, atol=1e-5)


def test_class_tokens_replace_the_context_before_the_chosen_block(tiny_clip):
    """At block 0 the context never reaches the features: they are the prompts with the class
    tokens in the slots (CoOp's class-specific assembly), taken as they are, without positional
    embedding (the authors' code swaps them into the running sequence, after the embedding)."""
    tcp = model(tiny_clip, layer=0)
    features = tcp.class_text_features()
    with torch.no_grad():
        tokens = tcp.class_tokens() - tcp.text_encoder.positional_embedding[1:5]
        direct = normalize(tcp.text_encoder(tcp.prompts.assemble(tokens, per_class=True), tcp.prompts.eos_positions))
    torch.testing.assert_close(features, direct, rtol=1e-5, atol=1e-6)
    features.sum().backward()
    assert tcp.ctx.grad is None or tcp.ctx.grad.abs().max() == 0
    assert tcp.tke.linear2.weight.grad.abs().max() > 0


def test_exactly_the_context_and_the_tke_learn(tiny_clip, images):
    tcp = model(tiny_clip, layer=2)
    tcp.loss(images, LABELS)[0].backward()
    assert {n for n, p in tcp.named_parameters() if p.requires_grad} == LEARNED
    assert {n for n, p in tcp.named_parameters() if p.grad is not None and p.grad.abs().max() > 0} == LEARNED


def test_loss_is_cross_entropy_plus_w_times_the_distance(tiny_clip, images):
    tcp = model(tiny_clip, w=3.0)
    loss, summary = tcp.loss(images, LABELS)
    with torch.no_grad():
        text = tcp.class_text_features()
        ce = F.cross_entropy(tcp(images), LABELS)
        kg = 1 - F.cosine_similarity(text, tcp.anchor, dim=1).mean()
    torch.testing.assert_close(loss.detach(), ce + 3.0 * kg)
    assert set(summary) == {"loss", "ce", "kg", "acc"} and kg > 0


def test_loss_falls(tiny_clip, images):
    tcp = model(tiny_clip)
    losses = train_steps(tcp, images, LABELS, torch.optim.Adam(learned_parameters(tcp), lr=1e-3, eps=1e-3), 15)
    assert losses[-1] < losses[0] - 0.05


def test_save_load_and_new_classes(tiny_clip, images):
    trained = model(tiny_clip)
    with torch.no_grad():
        trained.ctx.add_(0.1)
    state = trained.trainable_state_dict()
    assert set(state) == LEARNED  # the anchor and the prompts are class-dependent: rebuilt
    again = model(tiny_clip)
    again.load_trainable_state_dict(state)
    new = model(tiny_clip, NEW)
    new.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), trained(images))
        with new.cached_text_features():
            assert new(images).shape == (4, 3)
        # new classes get their own class-aware tokens from their own hand-crafted features
        assert not torch.allclose(new.class_tokens()[0], trained.class_tokens()[0])


def test_fast_paths_give_the_slow_paths_outputs(tiny_clip, images):
    fast, slow = fast_and_slow(model(tiny_clip), images, LABELS)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-5)
    for name, grad in fast.grads.items():  # equal up to float rounding, relative to the gradient's size
        assert (grad - slow.grads[name]).norm() <= 1e-4 * slow.grads[name].norm(), name


@pytest.mark.parametrize("key", ["TEMPLATE", "ANCHOR_TEMPLATE"])
def test_a_template_without_the_class_slot_is_one_line(key):
    node = TCPOptions.to_node()
    node[key] = "a photo"
    with pytest.raises(ConfigError) as info:
        TCPOptions.from_node(node)
    assert str(info.value) == f"TRAINER.TCP.{key} 'a photo' has no '{{}}' for the class name."


def test_a_block_the_encoder_lacks_is_a_config_error(tiny_clip):
    with pytest.raises(ConfigError, match="TRAINER.TCP.LAYER is 8; the text encoder has blocks 0..2"):
        TCP(tiny_clip, BASE, TCPOptions())


@requires_dassl
def test_base2new_scripts_end_to_end(tmp_path, tiny_clip_path):
    report = base2new_report("tcp", "TCP", tmp_path, tiny_clip_path, "TRAINER.TCP.PREC", "fp32", "TRAINER.TCP.LAYER", "1")
    assert "### Base-to-new: TCP (vit_b16_ep50_ctx4, 2 shots)" in report
    assert "| TCP | caltech101 | base | " in report and "| 98.23 [" in report  # beside the published per dataset
    assert "| TCP | average | hm | – | 79.51 [" in report  # one dataset: no average of ours


def test_fp16_clip_gives_fp32_gradients_close_to_fp32(images):
    """CLIP in fp16 (as PREC fp16 loads it): the learned parameters stay fp32 and the loss stays close."""
    from clipprompt.backbones._clip import clip_model
    from clipprompt.backbones.random_clip import build_random_clip

    half = build_random_clip("tiny")
    clip_model.convert_weights(half)
    losses = {}
    for name, clip_ in (("fp32", build_random_clip("tiny")), ("fp16", half)):
        tcp = model(clip_)
        loss, _ = tcp.loss(images, LABELS)
        loss.backward()
        assert tcp.ctx.grad.dtype == torch.float32 and torch.isfinite(tcp.tke.linear2.weight.grad).all()
        losses[name] = loss.item()
    assert losses["fp16"] == pytest.approx(losses["fp32"], abs=2e-2)


@requires_dassl
def test_trainers_apply_their_own_adam_eps_and_others_keep_dassls(tmp_path, tiny_clip_path):
    """`ClipTrainer` sets the eps of Adam-family optimizers from a method's `ADAM_EPS` (TCP's 1e-3);
    a method without that key keeps Dassl's (CoOp with Adam: 1e-8)."""
    from pathlib import Path

    import datasets  # noqa: F401  (registers the datasets)
    import train
    import trainers  # noqa: F401  (registers the trainers)
    from clipprompt.testing import make_tiny_dataset
    from dassl.engine import build_trainer

    repo = Path(__file__).resolve().parent.parent
    make_tiny_dataset(str(tmp_path / "data"), "Caltech101", num_classes=4, images_per_class=4)

    def eps(trainer, config, *extra):
        args = train.parse_args([
            "--root", str(tmp_path / "data"), "--trainer", trainer, "--output-dir", str(tmp_path / trainer),
            "--dataset-config-file", str(repo / "configs/datasets/caltech101.yaml"),
            "--config-file", str(repo / f"configs/trainers/{config}.yaml"), "MODEL.BACKBONE.NAME", tiny_clip_path,
            "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "1",
            "TRAINER.TCP.LAYER", "1", *extra,
        ])
        return {group["eps"] for group in build_trainer(train.setup_cfg(args)).optim.param_groups}

    assert eps("TCP", "TCP/vit_b16_ep50_ctx4") == {1e-3}
    assert eps("TCP", "TCP/vit_b16_ep50_ctx4", "TRAINER.TCP.ADAM_EPS", "1e-6") == {1e-6}
    assert eps("CoOp", "CoOp/vit_b16_ep50", "OPTIM.NAME", "adam") == {1e-8}
