"""ProGrad (CoOp trained with the cross-entropy gradient projected away from zero-shot CLIP's) on the tiny CLIP."""

import pytest
import torch
import torch.nn.functional as F

from clipprompt.backbones._clip import clip
from clipprompt.errors import ConfigError
from clipprompt.models import ProGrad
from clipprompt.models.base import normalize
from clipprompt.models.prograd import ProGradOptions, authors_template, projected
from clipprompt.options import OPTIONS
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import run_base2new_scripts

from model_checks import fast_and_slow, learned_parameters, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
PETS = authors_template("OxfordPets", "a photo of a {}, a type of pet.")


def build(clip_model, classnames=BASE, template="a photo of a {}.", **options):
    torch.manual_seed(0)
    return ProGrad(clip_model, classnames, ProGradOptions(**options), template=template)


def test_options_and_the_authors_prompts():
    assert OPTIONS["PROGRAD"] is ProGradOptions
    options = ProGradOptions()
    assert (options.n_ctx, options.template_init, options.lambda_, options.t) == (16, True, 1.0, 1.0)
    assert "TRAINER.PROGRAD.LAMBDA" in dict((k, d) for k, d, _ in ProGradOptions.describe())  # `lambda_` is LAMBDA
    assert PETS == "a type of pet, a photo of a {}."  # the class name last, the context before it
    assert authors_template("Caltech101", "a photo of a {}.") == "a photo of a {}."


def test_context_starts_from_the_prompt_as_the_authors_do(tiny_clip):
    """8 words, 9 tokens: the last 8 context vectors are the first 8 tokens' embeddings, the first 8 are
    zero, and the 9th token ("a") stays a fixed word before the class name."""
    model = build(tiny_clip, template=PETS)
    tokens = clip.tokenize("a type of pet, a photo of a")[0]
    with torch.no_grad():
        words = tiny_clip.token_embedding(tokens)[1:9]
    assert torch.equal(model.ctx[:8], torch.zeros(8, 128)) and torch.equal(model.ctx[8:], words)
    full = clip.tokenize([f"{'X ' * 16}a {name.replace('_', ' ')}." for name in BASE])
    assert torch.equal(model.prompts.cut_tokens[:, 17:], full[:, 17 : model.prompts.cut_tokens.shape[1]])


def test_teacher_is_zero_shot_clip_on_the_prompt(tiny_clip, images):
    model = build(tiny_clip, template=PETS).configure(eos_cut=False, fused=False)
    with torch.no_grad():
        expected = normalize(tiny_clip.encode_text(clip.tokenize([PETS.format(n.replace("_", " ")) for n in BASE])))
    assert torch.equal(model.frozen_prompt_features(PETS), expected)


def test_projection_removes_the_conflicting_component():
    h = torch.tensor([1.0, 0.0])
    assert torch.equal(projected(torch.tensor([1.0, 2.0]), h, 1.0), torch.tensor([1.0, 2.0]))  # no conflict
    torch.testing.assert_close(projected(torch.tensor([-1.0, 2.0]), h, 1.0), torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(projected(torch.tensor([-1.0, 2.0]), h, 0.5), torch.tensor([-0.5, 2.0]))


@pytest.mark.parametrize("t,lam", [(1.0, 1.0), (2.0, 0.5)])
def test_the_gradient_is_the_projected_cross_entropy_gradient(tiny_clip, images, t, lam):
    model = build(tiny_clip, template=PETS, t=t, lambda_=lam)
    loss, summary = model.loss(images, LABELS)
    loss.backward()
    # the same quantities by hand: CE and the distillation term, their gradients, the projection
    logits = model(images)
    with torch.no_grad():
        teacher = model.logits(normalize(model.image_encoder(images)), model.frozen_prompt_features(PETS))
    ce = F.cross_entropy(logits, LABELS)
    kd = (-F.softmax(teacher / t, -1) * F.log_softmax(logits / t, -1)).sum(1).mean() * t * t
    (g,) = torch.autograd.grad(ce, model.ctx, retain_graph=True)
    (h,) = torch.autograd.grad(kd, model.ctx)
    assert torch.dot(g.flatten(), h.flatten()) < 0  # the batch conflicts: the projection acts
    torch.testing.assert_close(model.ctx.grad, projected(g, h, lam), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(loss.detach(), ce.detach())  # the value is the cross-entropy
    assert summary["kd"] == pytest.approx(kd.item(), rel=1e-5)
    assert {n for n, p in model.named_parameters() if p.grad is not None} == {"ctx"}


def test_loss_falls_on_a_tiny_task(tiny_clip, images):
    """From the prompt's words (half the context at zero) the tiny random CLIP learns slowly: 1.69 -> 1.34."""
    model = build(tiny_clip)
    losses = train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=1.0), 30)
    assert losses[-1] < 0.85 * losses[0] and losses[-1] < min(losses[:-1])


def test_save_load_round_trip_and_eval_on_new_classes(tiny_clip, images):
    model = build(tiny_clip, template=PETS)
    with torch.no_grad():
        model.ctx.add_(torch.randn_like(model.ctx) * 0.1)
    state = model.trainable_state_dict()
    assert set(state) == {"ctx"}
    again, new = build(tiny_clip, template=PETS), build(tiny_clip, NEW, template=PETS)
    again.load_trainable_state_dict(state)
    new.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images))
        with new.cached_text_features():
            assert new(images).shape == (4, len(NEW))


def test_fast_paths_equal_slow_ones(tiny_clip, images):
    fast, slow = fast_and_slow(build(tiny_clip, template=PETS), images, LABELS)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    assert (fast.grads["ctx"] - slow.grads["ctx"]).norm() <= 1e-4 * slow.grads["ctx"].norm()


def test_errors_name_the_keys(tiny_clip):
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, template=PETS, n_ctx=4)
    assert str(info.value) == "TRAINER.PROGRAD.N_CTX is 4, fewer than the 8 words of 'a type of pet, a photo of a'."
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, template="a photo of a {}, a type of pet.")
    assert str(info.value) == (
        "TRAINER.PROGRAD.TEMPLATE_INIT needs a prompt ending in '{}.'; the prompt is 'a photo of a {}, a type of pet.'.")
    with pytest.raises(ConfigError, match=r"TRAINER.PROGRAD.LAMBDA is 1.5; it must be <= 1"):
        ProGradOptions(lambda_=1.5).validate()
    build(tiny_clip, template="a photo of a {}, a type of pet.", template_init=False, ctx_init="a photo of a")  # CoOp's start


@requires_dassl
def test_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path):
    state = run_base2new_scripts("prograd", "ProGrad", tmp_path, tiny_clip_path)
    assert set(state) == {"ctx"}
