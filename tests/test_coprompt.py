"""CoPrompt (MaPLe's prompts, output adapters, consistency with frozen CLIP) on the tiny CLIP."""

import random

import pytest
import torch
import torch.nn.functional as F

from clipprompt.backbones._clip import clip
from clipprompt.backbones.random_clip import build_random_clip
from clipprompt.data import descriptions as description_data
from clipprompt.data.errors import DatasetError
from clipprompt.errors import ConfigError
from clipprompt.models import CoPrompt, CoPromptOptions, MaPLe, MaPLeOptions
from clipprompt.models import coprompt as coprompt_module
from clipprompt.models.base import normalize
from clipprompt.options import OPTIONS
from clipprompt.testing import make_tiny_dataset, make_tiny_descriptions, tiny_classnames
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import TINY_OVERRIDES, run_base2new_scripts, train_in_process

from model_checks import fast_and_slow, learned_parameters, reload_and_evaluate_new_classes, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
DESCRIPTIONS = [[f"a {name.replace('_', ' ')} {detail}" for detail in ("with four legs", "in the rain", "seen from afar")]
                for name in BASE]
MAPLE_LEARNED = {"ctx", "proj.weight", "proj.bias"} | {f"deep_text.{i}" for i in (0, 1)} | {
    f"deep_proj.{i}.{kind}" for i in (0, 1) for kind in ("weight", "bias")}
LEARNED = MAPLE_LEARNED | {f"{side}_adapter.{i}.weight" for side in ("image", "text") for i in (0, 2)}


def build(clip_model, classnames=BASE, descriptions=DESCRIPTIONS, **options):
    torch.manual_seed(0)
    return CoPrompt(clip_model, classnames, CoPromptOptions(**{"prompt_depth": 3, **options}), descriptions)


def perturbed(model, amount=0.1):
    with torch.no_grad():
        for p in learned_parameters(model):
            p.add_(torch.randn_like(p) * amount)
    return model


@pytest.fixture
def views(images):
    return images, images.flip(-1) * 0.5


def test_options_are_the_authors_recipe():
    assert OPTIONS["COPROMPT"] is CoPromptOptions
    o = CoPromptOptions()
    assert (o.n_ctx, o.ctx_init, o.prompt_depth, o.prec) == (2, "a photo of a", 9, "fp16")
    assert (o.consistency_weight, o.distance, o.image_adapter_ratio, o.text_adapter_ratio, o.adapter_reduction) == (
        1.0, "cosine", 0.1, 0.2, 4)
    assert (o.descriptions, o.description_choice) == ("coprompt", "random")
    assert set(coprompt_module.DESCRIPTION_SETS) == set(description_data.DESCRIPTION_SETS)


def test_features_are_maples_mixed_with_the_adapters(tiny_clip, images):
    """f' = 0.1·A_v(f) + 0.9·f and g' = 0.2·A_t(g) + 0.8·g on MaPLe's features, by hand."""
    model = perturbed(build(tiny_clip))
    maple = MaPLe(tiny_clip, BASE, MaPLeOptions(prompt_depth=3))
    maple.load_state_dict({k: v for k, v in model.state_dict().items() if "adapter" not in k})
    assert {n for n, p in model.named_parameters() if p.requires_grad} == LEARNED
    assert model.image_adapter[0].weight.shape == (8, 32) and model.text_adapter[2].weight.shape == (32, 8)
    with torch.no_grad():
        f, g = maple.encode_images(images), maple.encode_class_text()
        image_adapter = lambda x: F.relu(F.relu(x @ model.image_adapter[0].weight.t()) @ model.image_adapter[2].weight.t())  # noqa: E731
        text_adapter = lambda x: F.relu(F.relu(x @ model.text_adapter[0].weight.t()) @ model.text_adapter[2].weight.t())  # noqa: E731
        image = normalize(0.1 * image_adapter(f) + 0.9 * f)
        text = normalize(0.2 * text_adapter(g) + 0.8 * g)
        torch.testing.assert_close(model.image_features(images), image)
        torch.testing.assert_close(model.class_text_features(), text)
        torch.testing.assert_close(model(images), model.logit_scale * image @ text.t())


def frozen_description_features(clip_model):
    """(n_desc, n_cls, E): frozen CLIP's normalized features of each description, as the authors stack them."""
    with torch.no_grad():
        return torch.stack([normalize(clip_model.encode_text(clip.tokenize(d))) for d in DESCRIPTIONS], dim=1)


@pytest.mark.parametrize("distance", ["cosine", "mse"])
def test_loss_is_cross_entropy_plus_both_consistency_terms(tiny_clip, views, distance):
    model = perturbed(build(tiny_clip, consistency_weight=2.5, distance=distance)).configure(eos_cut=False, fused=False)
    random.seed(3)
    index = random.randint(0, 2)  # the draw the model makes after this seed
    random.seed(3)
    loss, summary = model.loss(views, LABELS)
    with torch.no_grad():
        image, text = model.image_features(views[0]), model.class_text_features()
        frozen_image = normalize(tiny_clip.encode_image(views[1]))
        target = normalize(frozen_description_features(tiny_clip)[index])
        if distance == "cosine":
            text_term = 1 - F.cosine_similarity(text, target, dim=1).mean()
            image_term = 1 - F.cosine_similarity(image, frozen_image, dim=1).mean()
        else:
            text_term, image_term = F.mse_loss(text, target), F.mse_loss(image, frozen_image)
        ce = F.cross_entropy(model.logit_scale * image @ text.t(), LABELS)
    assert summary["text_consistency"] == pytest.approx(text_term.item(), rel=1e-5, abs=1e-7)
    assert summary["image_consistency"] == pytest.approx(image_term.item(), rel=1e-5, abs=1e-7)
    assert summary["ce"] == pytest.approx(ce.item(), rel=1e-5)
    torch.testing.assert_close(loss, ce + 2.5 * (text_term + image_term), rtol=1e-5, atol=1e-6)


def test_the_second_view_only_reaches_the_frozen_target(tiny_clip, views):
    model = perturbed(build(tiny_clip))
    random.seed(0)
    _, one = model.loss(views, LABELS)
    random.seed(0)
    _, other = model.loss((views[0], torch.randn_like(views[1])), LABELS)
    assert one["ce"] == other["ce"] and one["text_consistency"] == other["text_consistency"]
    assert one["image_consistency"] != other["image_consistency"]
    random.seed(0)
    _, same = model.loss(views[0], LABELS)  # one tensor: the same view for both
    random.seed(0)
    _, pair = model.loss((views[0], views[0]), LABELS)
    assert same == pair


def test_a_description_drawn_per_step_or_their_mean(tiny_clip, views):
    model = build(tiny_clip)
    targets = model.description_targets()
    torch.testing.assert_close(targets, frozen_description_features(tiny_clip), rtol=1e-5, atol=1e-6)
    assert model.description_targets() is targets  # computed once
    random.seed(1)
    draws = [random.randint(0, 2) for _ in range(6)]
    random.seed(1)
    for index in draws:
        torch.testing.assert_close(model.description_target(), normalize(targets[index]))
    assert len(set(draws)) > 1
    mean = build(tiny_clip, description_choice="mean")
    expected = normalize(frozen_description_features(tiny_clip).mean(dim=0))
    torch.testing.assert_close(mean.description_target(), expected, rtol=1e-5, atol=1e-6)


def test_gradients_reach_exactly_the_prompts_and_adapters(tiny_clip, views):
    model = build(tiny_clip)
    loss, _ = model.loss(views, LABELS)
    loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (name in LEARNED), name


def test_loss_falls_on_a_tiny_task(tiny_clip, views):
    model = build(tiny_clip, description_choice="mean")
    losses = train_steps(model, views, LABELS, torch.optim.SGD(learned_parameters(model), lr=0.01), 30)
    assert losses[-1] < 0.7 * losses[0]


def test_save_load_round_trip_and_eval_on_new_classes_without_descriptions(tiny_clip, images):
    model = perturbed(build(tiny_clip))
    new = build(tiny_clip, NEW, descriptions=None)
    reload_and_evaluate_new_classes(model, build(tiny_clip), new, images, LEARNED)
    with torch.no_grad():
        torch.testing.assert_close(new.image_features(images), model.image_features(images))
    with pytest.raises(RuntimeError, match="without class descriptions"):
        new.loss(images, LABELS[:1].expand(4))


def test_fast_paths_equal_slow_ones(tiny_clip, views):
    model = perturbed(build(tiny_clip, description_choice="mean"))
    fast, slow = fast_and_slow(model, views[0], LABELS)  # one view as both
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name, grad in slow.grads.items():
        assert (fast.grads[name] - grad).norm() <= 1e-5 * grad.norm(), name
    losses = []
    for fast_path in (True, False):  # and two views
        model.configure(eos_cut=fast_path, fused=fast_path)
        losses.append(model.loss(views, LABELS)[1])
    for term in ("loss", "text_consistency", "image_consistency"):
        assert losses[0][term] == pytest.approx(losses[1][term], rel=1e-5, abs=1e-7), term


def test_errors_name_the_keys(tiny_clip):
    uneven = [d[: 1 + i % 3] for i, d in enumerate(DESCRIPTIONS)]
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, descriptions=uneven)
    assert str(info.value) == (
        "The classes have 1 to 3 descriptions each; TRAINER.COPROMPT.DESCRIPTION_CHOICE random draws one index "
        "for all classes and needs the same number for each (or use mean)."
    )
    assert build(tiny_clip, descriptions=uneven, description_choice="mean").description_target().shape == (4, 32)
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, adapter_reduction=200)
    assert str(info.value) == "TRAINER.COPROMPT.ADAPTER_REDUCTION 200 leaves no width of the 32-wide features."
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, prompt_depth=9)
    assert str(info.value) == "TRAINER.COPROMPT.PROMPT_DEPTH is 9; this CLIP has 3 blocks."


def test_refused_in_one_line_on_a_resnet():
    with pytest.raises(ConfigError, match="^CoPrompt prompts the image encoder's tokens"):
        CoPrompt(build_random_clip("tiny-rn", seed=0), BASE, CoPromptOptions(prompt_depth=1), DESCRIPTIONS)


# ---- the description files --------------------------------------------------------------------


def test_descriptions_are_read_in_class_order_with_underscores_as_spaces(tmp_path):
    make_tiny_descriptions(tmp_path, "Caltech101", num_classes=4, per_class=2)
    names = tiny_classnames("Caltech101", 4)
    read = description_data.load_descriptions("Caltech101", str(tmp_path), "coprompt",
                                              [names[2].replace(" ", "_"), names[0]])
    assert read == [[f"A photo of a {names[2]}, seen up close.", f"A {names[2]} has a shape of its own."],
                    [f"A photo of a {names[0]}, seen up close.", f"A {names[0]} has a shape of its own."]]


def test_missing_or_incomplete_descriptions_are_one_line_naming_the_prepare_command(tmp_path):
    with pytest.raises(DatasetError) as info:
        description_data.load_descriptions("Caltech101", str(tmp_path), "coprompt", ["face"])
    path = tmp_path / "caltech-101" / "descriptions_coprompt.json"
    assert str(info.value) == (
        f"{path}: expected the coprompt class descriptions; get them with: "
        f"python -m clipprompt.data.prepare caltech101 --root {tmp_path} --descriptions coprompt"
    )
    make_tiny_descriptions(tmp_path, "Caltech101", num_classes=2)
    with pytest.raises(DatasetError) as info:
        description_data.load_descriptions("Caltech101", str(tmp_path), "coprompt", ["face", "zebra"])
    assert str(info.value) == (
        f"{path}: expected descriptions of every class; none for 'zebra'; get the published file again with: "
        f"python -m clipprompt.data.prepare caltech101 --root {tmp_path} --descriptions coprompt"
    )
    path.write_text('{"face": []}')
    with pytest.raises(DatasetError, match="has \\[\\]"):
        description_data.load_descriptions("Caltech101", str(tmp_path), "coprompt", ["face"])


# ---- Dassl end to end -------------------------------------------------------------------------


@requires_dassl
def test_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path):
    state = run_base2new_scripts("coprompt", "CoPrompt", tmp_path, tiny_clip_path, "TRAINER.COPROMPT.PROMPT_DEPTH", "3",
                                 "INPUT.TRANSFORMS", "['randaugment', 'normalize']", descriptions=True)
    assert set(state) == LEARNED


@requires_dassl
def test_two_views_reach_the_model(tmp_path, tiny_clip_path, monkeypatch):
    """K_TRANSFORMS 2: the first (augmented) view goes to the prompted model, another to frozen CLIP."""
    seen = []
    loss = CoPrompt.loss
    monkeypatch.setattr(CoPrompt, "loss", lambda self, images, labels: seen.append(images) or loss(self, images, labels))
    data = tmp_path / "data"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=3)
    make_tiny_descriptions(str(data), "Caltech101", num_classes=4)
    status = train_in_process([
        "--root", str(data), "--trainer", "CoPrompt", "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/CoPrompt/vit_b16_ep8.yaml", "--output-dir", str(tmp_path / "out"),
        "MODEL.BACKBONE.NAME", tiny_clip_path, *TINY_OVERRIDES, "DATASET.NUM_SHOTS", "1",
        "OPTIM.MAX_EPOCH", "1", "TRAINER.COPROMPT.PROMPT_DEPTH", "3",
    ])
    assert status == 0 and seen
    first, second = seen[0]
    assert first.shape == second.shape == (4, 3, 32, 32) and not torch.equal(first, second)


@requires_dassl
def test_train_py_without_descriptions_stops_in_one_line_naming_prepare(tmp_path, tiny_clip_path, capsys):
    data = tmp_path / "data"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=3)
    status = train_in_process([
        "--root", str(data), "--trainer", "CoPrompt", "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/CoPrompt/vit_b16_ep8.yaml", "--output-dir", str(tmp_path / "out"),
        "MODEL.BACKBONE.NAME", tiny_clip_path, *TINY_OVERRIDES, "DATASET.NUM_SHOTS", "1",
        "TRAINER.COPROMPT.PROMPT_DEPTH", "3",
    ])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.strip() == (
        f"error: {data / 'caltech-101' / 'descriptions_coprompt.json'}: expected the coprompt class descriptions; "
        f"get them with: python -m clipprompt.data.prepare caltech101 --root {data} --descriptions coprompt"
    )
    assert not (tmp_path / "out").exists()  # refused with the config, before anything is written


@requires_dassl
def test_every_randaugment_operation_runs(tiny_clip_path):
    """The authors' transforms use Dassl's randaugment, whose SolarizeAdd used NumPy's removed `np.int`."""
    import numpy as np
    from PIL import Image

    import dassl_api  # noqa: F401  (the project's Dassl, with the operation replaced)
    from dassl.data.transforms.randaugment import RandAugment

    image = Image.fromarray(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))
    for op, low, high in RandAugment().augment_list:
        assert op(image.copy(), (low + high) / 2).size == (32, 32), op.__name__
    (solarize_add,) = [op for op, *_ in RandAugment().augment_list if op.__name__ == "_solarize_add"]
    pixels = np.array(solarize_add(image, 100))
    expected = np.clip(np.array(image).astype(np.int64) + 100, 0, 255)
    assert np.array_equal(pixels, np.where(expected < 128, expected, 255 - expected))
