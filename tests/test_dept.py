"""DePT (a channel-wise transformation and a linear head beside a base method) on the tiny CLIP."""

import math

import pytest
import torch
import torch.nn.functional as F

from clipprompt.errors import ConfigError
from clipprompt.models import MPL, CoCoOp, CoOp, DePT, DePTOptions, KgCoOp, MaPLe
from clipprompt.models.base import normalize
from clipprompt.models.cocoop import CoCoOpOptions
from clipprompt.models.kgcoop import KgCoOpOptions
from clipprompt.models.maple import MaPLeOptions
from clipprompt.optim import build_lr_scheduler
from clipprompt.options import OPTIONS
from clipprompt.runs.feature_cache import uses_frozen_features
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import run_base2new_scripts, train_in_process

from model_checks import fast_and_slow, learned_parameters, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
HEAD = {"cwt_text.scale", "cwt_text.bias", "cwt_image.scale", "cwt_image.bias", "head.weight", "head.bias"}
MAPLE = {"ctx", "proj.weight", "proj.bias", "deep_text.0", "deep_text.1"} | {
    f"deep_proj.{k}.{p}" for k in (0, 1) for p in ("weight", "bias")
}
META_NET = {f"base.meta_net.{k}.{p}" for k in (0, 2) for p in ("weight", "bias")}
LEARNED = {"coop": {"base.ctx"} | HEAD, "cocoop": {"base.ctx"} | META_NET | HEAD, "kgcoop": {"base.ctx"} | HEAD,
           "maple": {f"base.{n}" for n in MAPLE} | HEAD}


def build_base(kind, clip_model, classnames=BASE):
    torch.manual_seed(0)
    if kind == "coop":
        return CoOp(clip_model, classnames)
    if kind == "cocoop":
        return CoCoOp(clip_model, classnames, CoCoOpOptions(n_ctx=4, ctx_init="a photo of a"))
    if kind == "kgcoop":
        return KgCoOp(clip_model, classnames, KgCoOpOptions(w=2.0))
    return MaPLe(clip_model, classnames, MaPLeOptions(prompt_depth=3))


def build(kind, clip_model, classnames=BASE, **options):
    base = build_base(kind, clip_model, classnames)
    torch.manual_seed(1)
    return DePT(base, DePTOptions(**options))


def perturb(model):
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return model


KINDS = ["coop", "cocoop", "kgcoop", "maple"]


def per_image_text(text, images):
    """Class text features (n_cls, E) as one set per image (B, n_cls, E); CoCoOp's are already."""
    return text if text.dim() == 3 else text.expand(len(images), *text.shape)


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_a_head_that_starts_as_the_identity_transform(kind, tiny_clip, images):
    model = build(kind, tiny_clip)
    assert model.head.weight.shape == (len(BASE), 32) and model.cwt_image.scale.shape == (32,)
    assert torch.equal(model.cwt_text.scale, torch.ones(32)) and torch.equal(model.cwt_text.bias, torch.zeros(32))
    with torch.no_grad():
        assert model(images).shape == (4, len(BASE))


@pytest.mark.parametrize("kind", KINDS)
def test_loss_is_the_papers_and_keeps_the_bases_terms(kind, tiny_clip, images):
    """(1 - W) CE(base logits) + W CE(head([CwT_t(t_y); CwT_v(v)]), [y; y]) (+ KgCoOp's W_kg * kg);
    CoCoOp's t_y is each image's own prompts' feature of its label."""
    model = perturb(build(kind, tiny_clip))
    base = model.base
    loss, summary = model.loss(images, LABELS)
    with torch.no_grad():
        image = base.encode_images(images)
        text = per_image_text(base.encode_text(image), images)  # (B, n_cls, E)
        logits = base.logit_scale * torch.einsum("be,bce->bc", normalize(image), normalize(text))
        torch.testing.assert_close(logits, base(images))  # what the base method computes
        labelled = text[torch.arange(len(LABELS)), LABELS]
        features = torch.cat([labelled * model.cwt_text.scale + model.cwt_text.bias,
                              image * model.cwt_image.scale + model.cwt_image.bias])
        head = features @ model.head.weight.t() + model.head.bias
        ce, ce_head = F.cross_entropy(logits, LABELS), F.cross_entropy(head, torch.cat([LABELS, LABELS]))
        expected = 0.3 * ce + 0.7 * ce_head
        if kind == "kgcoop":
            kg = 1 - F.cosine_similarity(text[0], base.anchor, dim=-1).mean()
            expected = expected + 2.0 * kg
            assert summary["kg"] == pytest.approx(kg.item(), rel=1e-5)
    assert summary["ce"] == pytest.approx(ce.item(), rel=1e-6) and summary["ce_head"] == pytest.approx(ce_head.item(), rel=1e-6)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_exactly_the_base_prompts_and_the_head(kind, tiny_clip, images):
    model = build(kind, tiny_clip)
    loss, _ = model.loss(images, LABELS)
    loss.backward()
    learned = {n for n, p in model.named_parameters() if p.requires_grad}
    assert learned == LEARNED[kind]
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (name in LEARNED[kind]), name
    (base, base_mult), (head, head_mult) = model.parameter_groups()
    assert base_mult == 1.0 and head_mult == 6.5
    assert {id(p) for p in base} | {id(p) for p in head} == {id(p) for p in learned_parameters(model)}
    assert len(head) == 6


@pytest.mark.parametrize("kind", ["coop", "cocoop", "maple"])
def test_loss_falls_on_a_tiny_task(kind, tiny_clip, images):
    model = build(kind, tiny_clip)
    losses = train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=0.5), 30)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kind", KINDS)
def test_evaluation_mixes_the_head_on_trained_classes(kind, tiny_clip, images):
    model = perturb(build(kind, tiny_clip)).eval()
    with torch.no_grad():
        base_logits = model.base(images)
        head = model.head_logits(model.encode_images(images))
        torch.testing.assert_close(model(images), 0.3 * base_logits + 0.7 * head)
        model.options.test_time_fusion = False
        torch.testing.assert_close(model(images), head)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_and_new_classes_get_the_base_logits_only(kind, tiny_clip, images):
    model = perturb(build(kind, tiny_clip)).eval()
    state = model.trainable_state_dict()
    assert set(state) == LEARNED[kind]
    again = build(kind, tiny_clip).eval()
    again.load_trainable_state_dict(again.fit_to_trained_classes(state, BASE))
    new = build(kind, tiny_clip, NEW).eval()
    new.load_trainable_state_dict(new.fit_to_trained_classes(state, BASE))
    assert not new.head_active and new.head is None
    plain = build_base(kind, tiny_clip, NEW).eval()  # the base method alone, with the trained prompts
    plain.load_trainable_state_dict({k.removeprefix("base."): v for k, v in state.items() if k.startswith("base.")})
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images), rtol=0, atol=0)
        with new.cached_text_features():
            logits = new(images)
        assert torch.equal(logits, plain(images))  # bit for bit: the head plays no part


def test_a_subset_of_the_trained_classes_keeps_their_head_rows(tiny_clip, images):
    """ImageNet-A/-R from ImageNet: every class was trained, so the head scores them with its rows."""
    model = perturb(build("coop", tiny_clip)).eval()
    subset = [BASE[4], BASE[1]]
    part = build("coop", tiny_clip, subset).eval()
    part.load_trainable_state_dict(part.fit_to_trained_classes(model.trainable_state_dict(), BASE))
    assert part.head_active
    with torch.no_grad():
        torch.testing.assert_close(part.head.weight, model.head.weight[[4, 1]], rtol=0, atol=0)
        full = model.head_logits(model.encode_images(images))[:, [4, 1]]
        torch.testing.assert_close(part(images), 0.3 * part.base(images) + 0.7 * full)


@pytest.mark.parametrize("kind", KINDS)
def test_fast_paths_equal_slow_ones(kind, tiny_clip, images):
    model = perturb(build(kind, tiny_clip))
    fast, slow = fast_and_slow(model, images, LABELS)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name, grad in slow.grads.items():
        assert (fast.grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


@pytest.mark.parametrize("kind", ["coop", "cocoop"])
def test_similarity_head_and_no_cwt(kind, tiny_clip, images):
    model = perturb(build(kind, tiny_clip, head="similarity", cwt=False)).eval()
    assert model.head is None and {n for n, p in model.named_parameters() if p.requires_grad} == LEARNED[kind] - HEAD
    loss, summary = model.loss(images, LABELS)
    with torch.no_grad():
        logits = model.base(images)  # without CwT the similarity head is the base's logits
        torch.testing.assert_close(model(images), logits)
    assert summary["ce_head"] == pytest.approx(summary["ce"], rel=1e-6)
    assert (model.parameter_groups()[1][0]) == []


def test_similarity_head_scores_each_image_against_its_own_prompts_on_cocoop(tiny_clip, images):
    """CoCoOp's text features depend on the image: the transformed image against its own prompts."""
    model = perturb(build("cocoop", tiny_clip, head="similarity")).eval()
    with torch.no_grad():
        image = model.encode_images(images)
        text = model.base.encode_text(image) * model.cwt_text.scale + model.cwt_text.bias  # (B, n_cls, E)
        moved = image * model.cwt_image.scale + model.cwt_image.bias
        head = model.logit_scale * torch.einsum("be,bce->bc", normalize(moved), normalize(text))
        torch.testing.assert_close(model.head_logits(image), head)
        torch.testing.assert_close(model(images), 0.3 * model.base(images) + 0.7 * head)
        loss, summary = model.loss(images, LABELS)
    assert summary["ce_head"] == pytest.approx(F.cross_entropy(head, LABELS).item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["coop", "cocoop", "kgcoop"])
def test_frozen_image_features_follow_the_base(kind, tiny_clip, images):
    model = perturb(build(kind, tiny_clip)).eval()
    assert uses_frozen_features(model) and not uses_frozen_features(build("maple", tiny_clip))
    with torch.no_grad(), model.cached_text_features():  # what evaluation from the feature cache computes
        assert torch.equal(model.logits_from_image_features(model.image_encoder(images)), model(images))


@pytest.mark.parametrize("kind", ["coop", "cocoop"])
def test_the_head_alone_runs_no_text_pass_and_gives_the_same_bits(kind, tiny_clip, images):
    """TEST_TIME_FUSION False on the trained classes: the linear head's logits need no text pass
    (CoCoOp's would be one per image and class), so none runs, once per test set or per batch."""
    model = perturb(build(kind, tiny_clip, test_time_fusion=False)).eval()
    calls = []
    hook = model.base.text_encoder.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        image = model.encode_images(images)
        expected = model.head_logits(image, model.raw_text_features(image))  # the head beside the text, as before
        calls.clear()
        with model.cached_text_features():
            assert torch.equal(model(images), expected) and torch.equal(model.logits_from_image_features(image), expected)
    assert calls == []
    model.options.test_time_fusion = True  # the fused logits read the base's text features
    with torch.no_grad(), model.cached_text_features():
        model(images)
    hook.remove()
    assert calls


def test_class_text_features_are_cached_only_where_they_do_not_depend_on_the_image(tiny_clip, images):
    coop, cocoop = build("coop", tiny_clip).eval(), perturb(build("cocoop", tiny_clip)).eval()
    with torch.no_grad():
        outside = cocoop(images)
        with coop.cached_text_features(), cocoop.cached_text_features():
            assert coop._raw_text_cache is not None and cocoop._raw_text_cache is None
            assert cocoop.class_text_features() is None
            assert torch.equal(cocoop(images), outside)


def test_options_and_errors(tiny_clip):
    assert OPTIONS["DEPT"] is DePTOptions
    assert (DePTOptions().weight, DePTOptions().lr_mult, DePTOptions().head) == (0.7, 6.5, "linear")
    with pytest.raises(ConfigError, match=r"^DePT wraps CoOp, CoCoOp, KgCoOp, MaPLe; MPL is not one of them\.$"):
        DePT(MPL(tiny_clip, BASE))  # a subclass of CoOp whose features come otherwise
    with pytest.raises(ConfigError, match=r"TRAINER.DEPT.WEIGHT is 1.5; it must be <= 1"):
        DePT(CoOp(tiny_clip, BASE), DePTOptions(weight=1.5))
    with pytest.raises(ConfigError, match=r"TRAINER.DEPT.HEAD is 'mlp'; use one of linear, similarity"):
        DePT(CoOp(tiny_clip, BASE), DePTOptions(head="mlp"))


def test_each_group_follows_the_schedule_from_its_own_rate_after_a_shared_warm_up():
    """Dassl's constant warm-up sets every group to WARMUP_CONS_LR; then cosine from each group's rate."""
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optim = torch.optim.SGD([{"params": [a], "lr": 0.0035}, {"params": [b], "lr": 0.0035 * 6.5}], lr=0.0035)
    sched = build_lr_scheduler(optim, "cosine", max_epoch=10, warmup_epoch=1, warmup_cons_lr=1e-5)
    rates = []
    for _ in range(3):
        rates.append([g["lr"] for g in optim.param_groups])
        optim.step()
        sched.step()
    assert rates[0] == pytest.approx([1e-5, 1e-5])
    assert rates[1] == pytest.approx([0.0035, 0.0035 * 6.5])
    assert rates[2] == pytest.approx([0.0035 * 0.5 * (1 + math.cos(math.pi / 10)), 0.02275 * 0.5 * (1 + math.cos(math.pi / 10))])


# ---- Dassl end to end -------------------------------------------------------------------------


@requires_dassl
def test_bad_dept_option_is_one_line_and_status_2(tmp_path, tiny_clip_path, capsys):
    from clipprompt.testing import make_tiny_dataset

    make_tiny_dataset(str(tmp_path / "data"), "Caltech101", num_classes=6, images_per_class=6)
    status = train_in_process([
        "--root", str(tmp_path / "data"), "--trainer", "CoOp_DePT", "--seed", "1",
        "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/CoOp_DePT/vit_b16_ep10_bs4_lr35.yaml", "--output-dir", str(tmp_path / "out"),
        "MODEL.BACKBONE.NAME", tiny_clip_path, "INPUT.SIZE", "(32, 32)", "TRAINER.DEPT.LR_MULT", "0.0",
    ])
    err = capsys.readouterr().err
    assert status == 2 and "TRAINER.DEPT.LR_MULT is 0.0; it must be > 0." in err and "Traceback" not in err


@requires_dassl
@pytest.mark.parametrize("method, trainer, extra, learned, lr", [
    ("coop_dept", "CoOp_DePT", ["TRAINER.COOP.N_CTX", "4"], LEARNED["coop"], "0.0035"),
    ("cocoop_dept", "CoCoOp_DePT", [], LEARNED["cocoop"], "0.002"),  # their CoCoOp recipe: 0.002, batch 1
    ("kgcoop_dept", "KgCoOp_DePT", [], LEARNED["kgcoop"], "0.0035"),
    ("maple_dept", "MaPLe_DePT", ["TRAINER.MAPLE.PROMPT_DEPTH", "3"], LEARNED["maple"], "0.0035"),
])
def test_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path, method, trainer, extra, learned, lr):
    state = run_base2new_scripts(method, trainer, tmp_path, tiny_clip_path, *extra)
    assert set(state) == learned and state["head.weight"].shape == (3, 32)  # the 3 base classes of 6
    (train_log,) = tmp_path.glob(f"out/base2new/train_base/caltech101/shots_2/{trainer}/*/seed1/log.txt")
    (test_log,) = tmp_path.glob(f"out/base2new/test_new/caltech101/shots_2/{trainer}/*/seed1/log.txt")
    head = sum(v.numel() for k, v in state.items() if not k.startswith("base."))  # 2 x 32 x 2 + 3 x 33 = 227
    assert head == 227 and f"Learning rate {float(lr) * 6.5:g} for {head} parameters" in train_log.read_text()
    assert f"Learning rate {lr} for" in train_log.read_text() and " ce_head " in train_log.read_text()
    assert "DePT's head is off, the base's logits decide" in test_log.read_text()  # new classes: the base alone
