import pytest
import torch

from clipprompt.backbones._clip import clip
from clipprompt.backbones.openai import OpenAITextEncoder as TextEncoder
from clipprompt.prompts import ClassPrompts, PromptLengthError, context_from_words, init_context, tokenize

NAMES = ["dog", "fire_truck", "sea lion"]


def test_assembled_prompt_equals_the_embedded_sentence(tiny_clip):
    """Slots filled with the embeddings of real words give exactly that sentence's embeddings."""
    encoder = TextEncoder(tiny_clip)
    prompts = ClassPrompts(encoder, NAMES, n_ctx=4)
    ctx = context_from_words(encoder, "a photo of a")
    assembled = prompts.assemble(ctx)
    tokens = clip.tokenize([f"a photo of a {n.replace('_', ' ')}." for n in NAMES])[:, : prompts.length]
    torch.testing.assert_close(assembled, encoder.embed(tokens))
    assert torch.equal(prompts.eos_positions, tokens.argmax(-1))


def test_prompts_are_cut_after_the_longest_eos(tiny_clip):
    prompts = ClassPrompts(TextEncoder(tiny_clip), NAMES, n_ctx=4)
    full = ClassPrompts(TextEncoder(tiny_clip), NAMES, n_ctx=4, cut=False)
    assert full.length == 77
    assert prompts.length == int(prompts.eos_positions.max()) + 1
    assert prompts.length < 12


def test_per_image_context_gives_a_grid(tiny_clip):
    encoder = TextEncoder(tiny_clip)
    prompts = ClassPrompts(encoder, NAMES, n_ctx=2)
    ctx = torch.randn(5, 2, encoder.width)
    grid = prompts.assemble(ctx)
    assert grid.shape == (5, 3, prompts.length, encoder.width)
    torch.testing.assert_close(grid[4, 1, 1:3], ctx[4])


def test_class_buffers_are_not_saved(tiny_clip):
    prompts = ClassPrompts(TextEncoder(tiny_clip), NAMES, n_ctx=2)
    assert prompts.state_dict() == {}


def test_context_init(tiny_clip):
    encoder = TextEncoder(tiny_clip)
    assert init_context(encoder, 6).shape == (6, encoder.width)
    assert init_context(encoder, 16, "a photo of a").shape == (4, encoder.width)
    with pytest.raises(ValueError, match="at least 1"):
        init_context(encoder, 0)


def test_too_long_prompt_names_the_text(tiny_clip):
    with pytest.raises(PromptLengthError, match="more than the 77-token context"):
        ClassPrompts(TextEncoder(tiny_clip), ["dog", "a very long class name"], n_ctx=72)
    with pytest.raises(PromptLengthError, match="shorten"):
        tokenize(["word " * 80])


def test_empty_class_list(tiny_clip):
    with pytest.raises(ValueError, match="empty"):
        ClassPrompts(TextEncoder(tiny_clip), [], n_ctx=2)
