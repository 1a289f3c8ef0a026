"""MMRL (representation tokens in both encoders, two heads, regularised towards frozen CLIP) on the tiny CLIP."""

import pytest
import torch
import torch.nn.functional as F

from clipprompt.backbones._clip import clip
from clipprompt.errors import ConfigError
from clipprompt.models import MMRL, MMRLOptions
from clipprompt.models.base import normalize
from clipprompt.models.mmrl import representation_injections
from clipprompt.options import OPTIONS
from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import TINY_OVERRIDES, run_base2new_scripts, train_in_process

from model_checks import fast_and_slow, learned_parameters, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
TEMPLATE = "a photo of a {}."
LEARNED = {"rep_tokens", "proj_rep"} | {f"to_{side}.{k}.{p}" for side in ("image", "text") for k in (0, 1)
                                        for p in ("weight", "bias")}


def build(clip_model, classnames=BASE, **options):
    torch.manual_seed(0)
    return MMRL(clip_model, classnames, MMRLOptions(**{"rep_layers": [2, 3], "n_rep_tokens": 3, "rep_dim": 16, **options}),
                template=TEMPLATE)


def frozen_features(tiny_clip, images, classnames=BASE):
    with torch.no_grad():
        text = tiny_clip.encode_text(clip.tokenize([TEMPLATE.format(n.replace("_", " ")) for n in classnames]))
        return normalize(tiny_clip.encode_image(images)), normalize(text)


def test_options_are_the_authors_recipe():
    assert OPTIONS["MMRL"] is MMRLOptions
    options = MMRLOptions()
    assert (options.alpha, options.reg_weight, options.n_rep_tokens, options.rep_dim, options.prec) == (0.7, 1.0, 5, 512, "amp")
    assert options.rep_layers == [6, 7, 8, 9, 10, 11, 12] and options.eval_head == "auto" and options.logit_scale == 0


def test_shapes_and_the_maps_start_equal_per_layer(tiny_clip, images):
    model = build(tiny_clip)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == LEARNED
    assert model.rep_tokens.shape == (3, 16) and model.proj_rep.shape == (128, tiny_clip.visual.output_dim)
    assert [t.shape for t in model.text_tokens()] == [(3, 128)] * 2 == [t.shape for t in model.image_tokens()]
    assert torch.equal(model.to_image[0].weight, model.to_image[1].weight)  # one initial map cloned, as the authors'
    with torch.no_grad():
        image, rep = model.image_features(images)
        assert image.shape == rep.shape == (4, tiny_clip.visual.output_dim)
        assert model(images).shape == (4, len(BASE))


def test_tokens_enter_at_the_chosen_layers_only(tiny_clip, images):
    """Inserted after [CLS] before the first representation block, replacing those positions before the
    later ones; layer l of REP_LAYERS is block l - 1."""
    model = build(tiny_clip)  # REP_LAYERS [2, 3]: blocks 1 and 2
    first, second = model.image_tokens()
    injections = representation_injections([first, second], model.blocks)
    assert sorted(injections) == [1, 2]
    x = torch.randn(4, 17, 128)
    grown = injections[1](x)
    assert grown.shape == (4, 20, 128) and torch.equal(grown[:, 0], x[:, 0]) and torch.equal(grown[:, 4:], x[:, 1:])
    assert torch.equal(grown[:, 1:4], first.detach().expand(4, 3, 128))
    replaced = injections[2](grown)
    assert torch.equal(replaced[:, 1:4], second.detach().expand(4, 3, 128)) and torch.equal(replaced[:, 4:], grown[:, 4:])
    frozen_image, _ = frozen_features(tiny_clip, images)
    with torch.no_grad():
        image, _ = build(tiny_clip, rep_layers=[3]).image_features(images)  # the last block alone sees the tokens
        assert not torch.allclose(image, frozen_image, atol=1e-4)


def test_loss_is_the_papers_sum_of_four_terms(tiny_clip, images):
    model = build(tiny_clip, alpha=0.6, reg_weight=2.0)
    loss, summary = model.loss(images, LABELS)
    frozen_image, frozen_text = frozen_features(tiny_clip, images)
    with torch.no_grad():
        text = model.class_text_features()
        image, rep = model.image_features(images)
        scale = tiny_clip.logit_scale.exp()
        ce = F.cross_entropy(scale * image @ text.t(), LABELS)
        ce_rep = F.cross_entropy(scale * rep @ text.t(), LABELS)
        reg_image = 1 - F.cosine_similarity(image, frozen_image).mean()
        reg_text = 1 - F.cosine_similarity(text, frozen_text).mean()
    expected = 0.6 * ce + 0.4 * ce_rep + 2.0 * reg_image + 2.0 * reg_text
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    for name, value in [("ce", ce), ("ce_rep", ce_rep), ("reg_image", reg_image), ("reg_text", reg_text)]:
        assert summary[name] == pytest.approx(value.item(), rel=1e-4, abs=1e-6), name
    assert reg_image > 0 and reg_text > 0


def test_gradients_reach_exactly_the_learned_parameters(tiny_clip, images):
    model = build(tiny_clip)
    loss, _ = model.loss(images, LABELS)
    loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (name in LEARNED), name


def test_loss_falls_on_a_tiny_task(tiny_clip, images):
    model = build(tiny_clip, reg_weight=0.1)
    losses = train_steps(model, images, LABELS, torch.optim.AdamW(learned_parameters(model), lr=1e-2), 30)
    assert losses[-1] < 0.5 * losses[0]


def test_save_load_round_trip_and_new_classes_use_the_class_token(tiny_clip, images):
    model = build(tiny_clip)
    with torch.no_grad():
        for p in learned_parameters(model):
            p.add_(torch.randn_like(p) * 0.1)
    state = model.trainable_state_dict()
    assert set(state) == LEARNED
    again, new = build(tiny_clip), build(tiny_clip, NEW)
    for loaded in (again, new):
        loaded.load_trainable_state_dict(state)
        loaded.trained_classnames = list(BASE)  # what the trainer sets from the checkpoint
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images))
        assert again.uses_fusion() and not new.uses_fusion()
        image, rep = new.image_features(images)
        with new.cached_text_features():
            text = new.class_text_features()
            class_token = new.logits(image, text)
            assert torch.equal(new(images), class_token)  # new classes: the class token alone, as the paper says
        fused = 0.7 * class_token + 0.3 * new.logits(rep, text)
        assert not torch.allclose(fused, class_token)
        new.options.eval_head = "fusion"  # the switch forces either head
        torch.testing.assert_close(new(images), fused)
        again.options.eval_head = "class"
        torch.testing.assert_close(again(images), again.logits(again.image_features(images)[0], again.class_text_features()))


def test_fast_paths_equal_slow_ones(tiny_clip, images):
    fast, slow = fast_and_slow(build(tiny_clip), images, LABELS)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name, grad in slow.grads.items():
        assert (fast.grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


def test_frozen_text_is_clips_bits_on_the_exact_path_and_the_authors_scale(tiny_clip, images):
    model = build(tiny_clip).configure(eos_cut=False, fused=False)
    _, frozen_text = frozen_features(tiny_clip, images)
    assert torch.equal(model.frozen_prompt_features(TEMPLATE), frozen_text)
    assert model.logit_scale.item() == pytest.approx(tiny_clip.logit_scale.exp().item())
    assert build(tiny_clip, logit_scale=100.0).logit_scale.item() == 100.0  # the authors' hard-coded 100


def test_errors_name_the_keys(tiny_clip):
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, rep_layers=[3, 4])
    assert str(info.value) == (
        "TRAINER.MMRL.REP_LAYERS reaches layer 4; this CLIP's encoders have 3 (text) and 3 (image) blocks.")
    for layers in ([], [3, 2], [0, 1], [2, 2]):
        with pytest.raises(ConfigError) as info:
            MMRLOptions(rep_layers=layers).validate()
        assert str(info.value) == (
            f"TRAINER.MMRL.REP_LAYERS {layers} must be a non-empty ascending list of layers counted from 1.")
    with pytest.raises(ConfigError, match=r"TRAINER.MMRL.EVAL_HEAD"):
        MMRLOptions(eval_head="rep").validate()


# ---- Dassl end to end -------------------------------------------------------------------------


@requires_dassl
def test_bad_rep_layers_exit_2_in_one_line(tmp_path, capsys, tiny_clip_path):
    data = tmp_path / "data"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=3)
    status = train_in_process([
        "--root", str(data), "--trainer", "MMRL", "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/MMRL/vit_b16.yaml", "--output-dir", str(tmp_path / "out"),
        "MODEL.BACKBONE.NAME", tiny_clip_path, *TINY_OVERRIDES, "DATASET.NUM_SHOTS", "1",
    ])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.strip() == ("error: TRAINER.MMRL.REP_LAYERS reaches layer 12; this CLIP's encoders have 3 (text) and "
                           "3 (image) blocks.")


@requires_dassl
def test_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path):
    state = run_base2new_scripts("mmrl", "MMRL", tmp_path, tiny_clip_path, "TRAINER.MMRL.REP_LAYERS", "[2, 3]",
                                 "TRAINER.MMRL.REP_DIM", "16")
    assert set(state) == LEARNED
    assert state["rep_tokens"].shape == (5, 16)
    (train_dir,) = (tmp_path / "out").glob("base2new/train_base/caltech101/shots_2/MMRL/vit_b16/seed1")
    checkpoint = torch.load(train_dir / "model" / "model.pth.tar-1", map_location="cpu", weights_only=False)
    assert checkpoint["config"]["TRAINER.MMRL.REG_WEIGHT"] == 0.5  # the authors' Caltech101 value (dataset_keys.bash)
    (test_dir,) = (tmp_path / "out").glob("base2new/test_new/caltech101/shots_2/MMRL/vit_b16/seed1")
    log = "\n".join(path.read_text() for path in test_dir.glob("log.txt*"))
    assert "MMRL evaluation head: class token (weights trained on other classes)" in log
