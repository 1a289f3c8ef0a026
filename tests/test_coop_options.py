"""CoOp's class-specific context (CSC) and class token position (end / middle / front)."""

import pytest
import torch

from clipprompt.backbones._clip import clip
from clipprompt.backbones.openai import OpenAITextEncoder as TextEncoder
from clipprompt.errors import ConfigError
from clipprompt.models import CoOp, ZeroshotCLIP
from clipprompt.models.coop import CoOpOptions
from clipprompt.prompts import ClassPrompts, context_from_words

from model_checks import train_steps

BASE = ["dog", "fire truck", "sea lion"]
NEW = ["owl", "red fox"]


@pytest.mark.parametrize(
    "position, sentence",
    [("end", "a photo of a {}."), ("middle", "a photo {} of a."), ("front", "{} a photo of a.")],
)
def test_the_class_name_goes_where_coop_puts_it(tiny_clip, position, sentence):
    """Word context in the slots gives exactly the embeddings of the reordered sentence."""
    encoder = TextEncoder(tiny_clip)
    prompts = ClassPrompts(encoder, BASE, n_ctx=4, position=position)
    assembled = prompts.assemble(context_from_words(encoder, "a photo of a"))
    tokens = clip.tokenize([sentence.format(name) for name in BASE])[:, : prompts.length]
    torch.testing.assert_close(assembled, encoder.embed(tokens))
    slots = sentence.replace("a photo", "X X").replace("of a", "X X")
    assert torch.equal(prompts.cut_tokens, clip.tokenize([slots.format(name) for name in BASE])[:, : prompts.length])
    assert torch.equal(prompts.eos_positions, tokens.argmax(-1))


def test_odd_context_splits_like_coop(tiny_clip):
    """Middle with 3 context vectors: 1 before the name, 2 after (CoOp's n // 2 split)."""
    encoder = TextEncoder(tiny_clip)
    prompts = ClassPrompts(encoder, ["fire truck"], n_ctx=3, position="middle")
    ctx = torch.randn(3, encoder.width)
    assembled = prompts.assemble(ctx)[0]
    torch.testing.assert_close(assembled[1], ctx[0])
    torch.testing.assert_close(assembled[4:6], ctx[1:])  # "fire truck" is two tokens


def test_class_specific_context_reaches_only_its_class(tiny_clip, images):
    model = CoOp(tiny_clip, BASE, CoOpOptions(n_ctx=2, csc=True))
    assert model.ctx.shape == (3, 2, model.text_encoder.width)
    model(images)[:, 1].sum().backward()
    grad = model.ctx.grad
    assert grad[1].abs().sum() > 0
    assert grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"ctx"}


@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_csc_from_words_starts_as_the_shared_context(tiny_clip, images, position):
    shared = CoOp(tiny_clip, BASE, CoOpOptions(ctx_init="a photo of a", class_token_position=position))
    csc = CoOp(tiny_clip, BASE, CoOpOptions(ctx_init="a photo of a", class_token_position=position, csc=True))
    assert csc.ctx.shape == (3, 4, csc.text_encoder.width)
    with torch.no_grad():
        torch.testing.assert_close(csc(images), shared(images))


def test_word_context_at_the_end_is_zeroshot_and_moving_it_changes_the_logits(tiny_clip, images):
    zeroshot = ZeroshotCLIP(tiny_clip, BASE, template="a photo of a {}.")
    with torch.no_grad():
        end = CoOp(tiny_clip, BASE, CoOpOptions(ctx_init="a photo of a"))(images)
        front = CoOp(tiny_clip, BASE, CoOpOptions(ctx_init="a photo of a", class_token_position="front"))(images)
        torch.testing.assert_close(end, zeroshot(images), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(front, end, atol=1e-3)


def test_csc_loss_falls(tiny_clip, images):
    torch.manual_seed(0)
    model = CoOp(tiny_clip, BASE + ["owl"], CoOpOptions(n_ctx=2, csc=True, class_token_position="front"))
    losses = train_steps(model, images, torch.tensor([0, 1, 2, 3]), torch.optim.SGD([model.ctx], lr=0.5), 15)
    assert losses[-1] < losses[0] - 0.05


def test_save_load_and_new_classes(tiny_clip, images):
    options = CoOpOptions(n_ctx=2, class_token_position="middle")
    trained = CoOp(tiny_clip, BASE, options)
    state = trained.trainable_state_dict()
    again = CoOp(tiny_clip, BASE, options)
    again.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), trained(images))
    new = CoOp(tiny_clip, NEW, options)  # a shared context scores unseen classes
    new.load_trainable_state_dict(state)
    assert new(images).shape == (4, 2)
    csc = CoOp(tiny_clip, BASE, CoOpOptions(n_ctx=2, csc=True))
    with pytest.raises(ValueError, match="shape mismatch ctx"):  # one context per base class
        CoOp(tiny_clip, NEW, CoOpOptions(n_ctx=2, csc=True)).load_trainable_state_dict(csc.trainable_state_dict())


@pytest.mark.parametrize("options", [CoOpOptions(n_ctx=3, csc=True, class_token_position="middle"),
                                     CoOpOptions(n_ctx=2, class_token_position="front")])
def test_fast_paths_give_the_slow_paths_outputs(tiny_clip, images, options):
    torch.manual_seed(0)
    model = CoOp(tiny_clip, BASE, options)
    with torch.no_grad():
        fast = model(images)
        slow = model.configure(eos_cut=False, fused=False)(images)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-4)


def test_options_are_checked():
    node = CoOpOptions.to_node()
    assert node.CSC is False and node.CLASS_TOKEN_POSITION == "end"
    node.CLASS_TOKEN_POSITION = "side"
    with pytest.raises(ConfigError, match="TRAINER.COOP.CLASS_TOKEN_POSITION is 'side'"):
        CoOpOptions.from_node(node)
