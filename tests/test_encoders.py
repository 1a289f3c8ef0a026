import pytest
import torch

from clipprompt.backbones._clip import clip
from clipprompt.backbones.openai import OpenAIImageEncoder as ImageEncoder, OpenAITextEncoder as TextEncoder
from clipprompt.prompts import cut_after_eos

TEXTS = ["a photo of a dog.", "a big red fire truck parked outside the station", "x"]


@pytest.mark.parametrize("fused", [True, False])
def test_text_encoder_reproduces_encode_text(tiny_clip, fused):
    tokens = clip.tokenize(TEXTS)
    with torch.no_grad():
        expected = tiny_clip.encode_text(tokens)
        got = TextEncoder(tiny_clip, fused=fused).encode_tokens(tokens)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_image_encoder_reproduces_encode_image(tiny_clip, images, fused):
    with torch.no_grad():
        expected = tiny_clip.encode_image(images)
        got = ImageEncoder(tiny_clip.visual, fused=fused)(images)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_eos_cut_gives_the_full_pass_features(tiny_clip):
    encoder = TextEncoder(tiny_clip)
    tokens = clip.tokenize(TEXTS)
    short = cut_after_eos(tokens)
    assert short.shape[1] == int(tokens.argmax(-1).max()) + 1 < 77
    with torch.no_grad():
        full = encoder(encoder.embed(tokens), tokens.argmax(-1))
        cut = encoder(encoder.embed(short), short.argmax(-1))
    torch.testing.assert_close(cut, full, rtol=0, atol=1e-5)


def test_injection_runs_before_the_chosen_block_only(tiny_clip):
    encoder = TextEncoder(tiny_clip)
    tokens = cut_after_eos(clip.tokenize(TEXTS))
    seen = []

    def record(index):
        def fn(x):
            seen.append((index, tuple(x.shape)))
            return x

        return fn

    with torch.no_grad():
        plain = encoder.encode_tokens(tokens)
        hooked = encoder(encoder.embed(tokens), tokens.argmax(-1), injections={1: record(1), 2: record(2)})
    assert seen == [(1, (3, tokens.shape[1], encoder.width)), (2, (3, tokens.shape[1], encoder.width))]
    torch.testing.assert_close(hooked, plain, rtol=0, atol=0)


def test_injection_changes_only_later_blocks(tiny_clip, images):
    encoder = ImageEncoder(tiny_clip.visual)
    last = encoder.depth - 1
    with torch.no_grad():
        plain, plain_tokens = encoder(images, return_tokens=True)
        # zeroing the patch tokens before the last block changes the output
        changed = encoder(images, injections={last: lambda x: torch.cat([x[:, :1], 0 * x[:, 1:]], 1)})
    assert not torch.allclose(changed, plain)
    assert plain_tokens.shape == (4, 1 + (32 // 8) ** 2, encoder.width)


def test_image_prompts_are_appended_after_the_positional_embedding(tiny_clip, images):
    encoder = ImageEncoder(tiny_clip.visual)
    prompts = torch.randn(1, 3, encoder.width)
    seen = {}

    def grab(x):
        seen["x"] = x
        return x

    with torch.no_grad():
        features, tokens = encoder(images, prompts=prompts, injections={0: grab}, return_tokens=True)
        expected_input = tiny_clip.visual.ln_pre(torch.cat([encoder.embed(images), prompts.expand(4, -1, -1)], 1))
    assert features.shape == (4, tiny_clip.text_projection.shape[1])
    assert tokens.shape[1] == 1 + 16 + 3
    torch.testing.assert_close(seen["x"], expected_input)


def test_gradients_flow_to_inputs_not_to_clip(tiny_clip):
    encoder = TextEncoder(tiny_clip).requires_grad_(False)
    tokens = cut_after_eos(clip.tokenize(TEXTS))
    embeddings = encoder.embed(tokens).clone().requires_grad_(True)
    encoder(embeddings, tokens.argmax(-1)).sum().backward()
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_clip.parameters())


def test_bf16_autocast_stays_close(tiny_clip, images):
    encoder = ImageEncoder(tiny_clip.visual)
    with torch.no_grad():
        reference = encoder(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = encoder(images)
    assert low.dtype == torch.bfloat16
    assert torch.nn.functional.cosine_similarity(low.float(), reference).min() > 0.99


def test_replace_tokens_overwrites_exactly_the_prompt_positions():
    from clipprompt.backbones.encoders import deep_prompt_injections, replace_tokens

    x = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    values = -torch.ones(2, 3)
    front, back = replace_tokens(values, 1)(x), replace_tokens(values, -2)(x)
    for out, positions in ((front, [1, 2]), (back, [4, 5])):
        assert out.shape == x.shape
        keep = [i for i in range(6) if i not in positions]
        assert torch.equal(out[:, positions], values.expand(2, 2, 3)) and torch.equal(out[:, keep], x[:, keep])
    per_sequence = torch.randn(2, 2, 3)
    assert torch.equal(replace_tokens(per_sequence, 1)(x)[:, 1:3], per_sequence)
    injections = deep_prompt_injections([values, 2 * values], start=-2)
    assert sorted(injections) == [1, 2] and torch.equal(injections[2](x)[:, 4:], 2 * values.expand(2, 2, 3))
    with pytest.raises(ValueError, match="do not fit"):
        replace_tokens(values, -1)
