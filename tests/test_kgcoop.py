"""KgCoOp: CoOp plus the knowledge-guided term towards the hand-crafted class text features."""

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F

from clipprompt.results import report
from clipprompt.backbones._clip import clip
from clipprompt.errors import ConfigError
from clipprompt.models import CoOp, KgCoOp, ZeroshotCLIP
from clipprompt.models.base import normalize
from clipprompt.models.coop import CoOpOptions
from clipprompt.models.kgcoop import KgCoOpOptions, authors_template
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import run_base2new_scripts

from model_checks import train_steps

BASE = ["dog", "cat", "fire truck", "sea lion"]
NEW = ["owl", "red fox", "tram"]
LABELS = torch.tensor([0, 1, 2, 3])


def test_defaults_are_the_authors():
    options = KgCoOpOptions()
    assert (options.n_ctx, options.ctx_init, options.w) == (4, "a photo of a", 8.0)
    assert authors_template("DescribableTextures", "{} texture.") == "a photo of a {}, a type of texture."
    assert authors_template("OxfordPets", "a photo of a {}, a type of pet.") == "a photo of a {}, a type of pet."


def test_a_template_without_the_class_slot_is_one_line():
    node = KgCoOpOptions.to_node()
    node.TEMPLATE = "a photo"
    with pytest.raises(ConfigError) as info:
        KgCoOpOptions.from_node(node)
    assert str(info.value) == "TRAINER.KGCOOP.TEMPLATE 'a photo' has no '{}' for the class name."


def test_anchor_is_clips_hand_crafted_feature_and_starts_at_zero_distance(tiny_clip, images):
    model = KgCoOp(tiny_clip, BASE, template="a photo of a {}.")
    with torch.no_grad():
        expected = normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {n}." for n in BASE])))
        torch.testing.assert_close(model.anchor, expected, rtol=1e-5, atol=1e-5)
        # context from the template's own words: learned features = hand-crafted ones
        assert model.knowledge_distance(model.class_text_features()).abs() < 1e-5
        zeroshot = ZeroshotCLIP(tiny_clip, BASE, template="a photo of a {}.")
        torch.testing.assert_close(model(images), zeroshot(images), rtol=1e-5, atol=1e-5)


def test_loss_is_cross_entropy_plus_w_times_the_distance(tiny_clip, images):
    torch.manual_seed(0)
    model = KgCoOp(tiny_clip, BASE, KgCoOpOptions(ctx_init="", n_ctx=3, w=2.5), template="a photo of a {}.")
    loss, summary = model.loss(images, LABELS)
    with torch.no_grad():
        text = model.class_text_features()
        ce = F.cross_entropy(model(images), LABELS)
        kg = 1 - F.cosine_similarity(text, model.anchor, dim=1).mean()
    torch.testing.assert_close(loss.detach(), ce + 2.5 * kg)
    assert kg > 0.01 and summary["kg"] == pytest.approx(kg.item(), rel=1e-5)
    assert set(summary) == {"loss", "ce", "kg", "acc"}


def test_only_the_context_learns(tiny_clip, images):
    model = KgCoOp(tiny_clip, BASE, KgCoOpOptions(ctx_init=""))
    model.loss(images, LABELS)[0].backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == {"ctx"}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"ctx"}


def test_w_zero_is_coop(tiny_clip, images):
    torch.manual_seed(0)
    kg = KgCoOp(tiny_clip, BASE, KgCoOpOptions(ctx_init="", w=0.0))
    coop = CoOp(tiny_clip, BASE, CoOpOptions(n_ctx=4))
    coop.load_trainable_state_dict(kg.trainable_state_dict())
    torch.testing.assert_close(kg.loss(images, LABELS)[0], coop.loss(images, LABELS)[0])


def test_loss_falls_and_the_term_holds_the_features_near_the_anchor(tiny_clip, images):
    def train(w):
        torch.manual_seed(0)
        model = KgCoOp(tiny_clip, BASE, KgCoOpOptions(w=w), template="a photo of a {}.")
        losses = train_steps(model, images, LABELS, torch.optim.SGD([model.ctx], lr=0.5), 12, record="ce")
        return losses, model.knowledge_distance(model.class_text_features()).item()

    free, free_distance = train(0.0)
    held, held_distance = train(8.0)
    assert free[-1] < free[0] - 0.05 and held[-1] < held[0]
    assert held_distance < free_distance


def test_save_load_and_new_classes(tiny_clip, images):
    torch.manual_seed(0)
    trained = KgCoOp(tiny_clip, BASE, KgCoOpOptions(ctx_init=""))
    state = trained.trainable_state_dict()
    assert set(state) == {"ctx"}  # the anchor is class-dependent, rebuilt for any class list
    again = KgCoOp(tiny_clip, BASE, KgCoOpOptions(ctx_init=""))
    again.load_trainable_state_dict(state)
    new = KgCoOp(tiny_clip, NEW, KgCoOpOptions(ctx_init=""))
    new.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), trained(images))
        with new.cached_text_features():
            assert new(images).shape == (4, 3)


def test_fast_paths_give_the_slow_paths_outputs(tiny_clip, images):
    torch.manual_seed(0)
    model = KgCoOp(tiny_clip, BASE, KgCoOpOptions(ctx_init=""))
    fast, _ = model.loss(images, LABELS)
    with torch.no_grad(), model.cached_text_features():
        cached = model(images)
    model.configure(eos_cut=False, fused=False)
    slow, _ = model.loss(images, LABELS)
    with torch.no_grad():
        torch.testing.assert_close(cached, model(images), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def base2new_report(method: str, trainer: str, tmp_path, tiny_clip_path, *overrides: str) -> str:
    """`scripts/<method>/base2new_{train,test}.sh caltech101 1` on tiny data (`run_base2new_scripts`),
    then `python -m clipprompt.report <output> --compare`, in this process; the report."""
    run_base2new_scripts(method, trainer, tmp_path, tiny_clip_path, "DATALOADER.TRAIN_X.BATCH_SIZE", "4", *overrides)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert report.main([str(tmp_path / "out"), "--compare"]) == 0
    return printed.getvalue()


@requires_dassl
def test_base2new_scripts_end_to_end(tmp_path, tiny_clip_path):
    report = base2new_report("kgcoop", "KgCoOp", tmp_path, tiny_clip_path, "TRAINER.KGCOOP.PREC", "fp32")
    assert "### Base-to-new: KgCoOp (vit_b16_ep100_ctxv1, 2 shots)" in report
    assert "| KgCoOp | caltech101 | base | " in report and "| 97.72 [" in report  # beside the published per dataset
    assert "| KgCoOp | average | hm | – | 77.00 [" in report  # one dataset: no average of ours
