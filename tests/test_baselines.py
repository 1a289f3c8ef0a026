"""ZeroshotCLIP, CoOp and CoCoOp as plain modules (no Dassl)."""

import pytest
import torch

from clipprompt.backbones._clip import clip
from clipprompt.models import CoCoOp, CoOp, ZeroshotCLIP
from clipprompt.models.base import normalize
from clipprompt.models.cocoop import CoCoOpOptions
from clipprompt.models.coop import CoOpOptions
from clipprompt.prompts import context_from_words

from model_checks import train_steps

BASE = ["dog", "cat", "fire truck", "sea lion"]
NEW = ["owl", "red fox", "tram"]


def test_zeroshot_logits_are_clips(tiny_clip, images):
    model = ZeroshotCLIP(tiny_clip, BASE, template="a photo of a {}.")
    with torch.no_grad():
        logits = model(images)
        text = normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {n}." for n in BASE])))
        expected = tiny_clip.logit_scale.exp() * normalize(tiny_clip.encode_image(images)) @ text.t()
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in model.parameters())


def test_coop_with_word_context_equals_zeroshot(tiny_clip, images):
    coop = CoOp(tiny_clip, BASE, CoOpOptions(ctx_init="a photo of a"))
    zeroshot = ZeroshotCLIP(tiny_clip, BASE, template="a photo of a {}.")
    with torch.no_grad():
        torch.testing.assert_close(coop(images), zeroshot(images), rtol=1e-5, atol=1e-5)


def test_coop_trains_only_its_context(tiny_clip, images):
    model = CoOp(tiny_clip, BASE, CoOpOptions(n_ctx=4))
    loss, summary = model.loss(images, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained == {"ctx"}
    assert set(summary) == {"loss", "acc"}


def test_coop_loss_falls(tiny_clip, images):
    torch.manual_seed(0)
    model = CoOp(tiny_clip, BASE, CoOpOptions(n_ctx=4))
    losses = train_steps(model, images, torch.tensor([0, 1, 2, 3]), torch.optim.SGD([model.ctx], lr=0.5), 15)
    assert losses[-1] < losses[0] - 0.05


def test_cached_text_features_are_computed_once(tiny_clip, images, monkeypatch):
    model = CoOp(tiny_clip, BASE, CoOpOptions(n_ctx=4)).eval()
    calls = []
    original = model.class_text_features
    monkeypatch.setattr(model, "class_text_features", lambda: calls.append(1) or original())
    with torch.no_grad():
        expected = model(images)
        calls.clear()
        with model.cached_text_features():
            outs = [model(images[i : i + 2]) for i in (0, 2)]
    assert len(calls) == 1
    torch.testing.assert_close(torch.cat(outs), expected)
    assert model._text_cache is None


def test_checkpoint_moves_from_base_to_new_classes(tiny_clip, images):
    base = CoCoOp(tiny_clip, BASE, CoCoOpOptions(n_ctx=4, ctx_init=""))
    state = base.trainable_state_dict()
    assert set(state) == {"ctx", "meta_net.0.weight", "meta_net.0.bias", "meta_net.2.weight", "meta_net.2.bias"}
    new = CoCoOp(tiny_clip, NEW, CoCoOpOptions(n_ctx=4, ctx_init=""))
    new.load_trainable_state_dict(state)
    assert new(images).shape == (4, len(NEW))
    again = CoCoOp(tiny_clip, BASE, CoCoOpOptions(n_ctx=4, ctx_init=""))
    again.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), base(images))


def test_checkpoint_of_another_shape_is_refused(tiny_clip):
    state = CoOp(tiny_clip, BASE, CoOpOptions(n_ctx=4)).trainable_state_dict()
    with pytest.raises(ValueError, match=r"shape mismatch ctx: checkpoint \(4, 128\) vs model \(8, 128\)"):
        CoOp(tiny_clip, BASE, CoOpOptions(n_ctx=8)).load_trainable_state_dict(state)
    with pytest.raises(ValueError, match="missing.*meta_net"):
        CoCoOp(tiny_clip, BASE, CoCoOpOptions(n_ctx=4, ctx_init="")).load_trainable_state_dict(state)


def test_cocoop_prompts_depend_on_the_image(tiny_clip, images):
    model = CoCoOp(tiny_clip, BASE, CoCoOpOptions(n_ctx=4, ctx_init="a photo of a"))
    torch.nn.init.normal_(model.meta_net[2].weight, std=0.5)
    with torch.no_grad():
        features = normalize(model.image_encoder(images))
        ctx = model.image_context(features)
    assert ctx.shape == (4, 4, model.text_encoder.width)
    assert not torch.allclose(ctx[0], ctx[1])


def test_cocoop_chunking_changes_nothing(tiny_clip, images):
    whole = CoCoOp(tiny_clip, BASE, CoCoOpOptions(n_ctx=4, text_chunk=0))
    chunked = CoCoOp(tiny_clip, BASE, CoCoOpOptions(n_ctx=4, text_chunk=3))
    chunked.load_trainable_state_dict(whole.trainable_state_dict())
    with torch.no_grad():
        torch.testing.assert_close(chunked(images), whole(images), rtol=1e-5, atol=1e-5)


def test_cocoop_gradients(tiny_clip, images):
    model = CoCoOp(tiny_clip, BASE, CoCoOpOptions(n_ctx=4))
    loss, _ = model.loss(images, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trained == set(model.trainable_state_dict())
    assert all(p.grad is None for p in tiny_clip.parameters())


def test_word_context_matches_the_tokenizer(tiny_clip):
    from clipprompt.backbones.openai import OpenAITextEncoder as TextEncoder

    encoder = TextEncoder(tiny_clip)
    ctx = context_from_words(encoder, "a photo of a")
    tokens = clip.tokenize(["a photo of a"])
    torch.testing.assert_close(ctx, encoder.embed(tokens)[0, 1:5])


@pytest.mark.parametrize("model_class", [ZeroshotCLIP, CoOp, CoCoOp])
def test_fast_paths_give_the_slow_paths_outputs(tiny_clip, images, model_class):
    """EOS cut and fused attention against the 77-token pass through CLIP's own block forward."""
    torch.manual_seed(0)
    model = model_class(tiny_clip, BASE)
    with torch.no_grad():
        fast = model(images)
        slow = model.configure(eos_cut=False, fused=False)(images)
        assert all(m.length == 77 for m in model.modules() if hasattr(m, "cut"))
        assert not model.text_encoder.fused and not model.image_encoder.fused
        mixed = model.configure(eos_cut=True, fused=False)(images)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(mixed, slow, rtol=1e-5, atol=1e-4)
