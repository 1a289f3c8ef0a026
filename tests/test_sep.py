"""SEP on the tiny random CLIP (CPU): the model as plain PyTorch, then the Dassl trainer when importable."""

from pathlib import Path

import pytest
import torch

from clipprompt.backbones._clip import clip
from clipprompt.errors import ConfigError, UserError
from clipprompt.models import SEP
from clipprompt.models.base import normalize
from clipprompt.models.sep import SEPOptions, TokenFusion, class_means, salient_token_indices
from clipprompt.prompts import PromptLengthError
from clipprompt.testing.markers import requires_dassl

from model_checks import learned_parameters, train_steps

BASE = ["dog", "cat", "fire truck", "sea lion"]
NEW = ["owl", "red fox", "tram"]
LABELS = torch.tensor([0, 1, 2, 3])
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tiny CLIP's ops are too small to split: one thread is faster, and steady on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sep(clip_model, classnames=BASE, frozen_fusion=True, **kwargs):
    """SEP with SEPOptions(**kwargs) (TRAINER.SEP keys in lower case)."""
    model = SEP(clip_model, classnames, SEPOptions(**kwargs))
    model.frozen_fusion = frozen_fusion
    return model


def build(clip_model, classnames=BASE, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = sep(clip_model, classnames, **kwargs)
    with torch.no_grad():
        model.init_prototypes(torch.randn(len(classnames), clip_model.text_projection.shape[1]))
    return model


def clip_visual_with_prompts(visual, images, prompts):
    """CLIP's own vision transformer (sequence-first, its own forward) with prompts after the positions."""
    x = visual.conv1(images).flatten(2).transpose(1, 2)
    cls = visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(torch.cat([x, prompts.expand(x.shape[0], -1, -1)], dim=1))
    x = visual.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
    return visual.ln_post(x[:, 0]) @ visual.proj


# ---- plain CLIP when nothing is fused ----------------------------------------------------------


def test_no_layers_no_fusion_is_plain_clip_on_each_branch(tiny_clip, images):
    model = build(tiny_clip, ctx_init="a photo of a", layers=[], frozen_fusion=False)
    assert len(model.text_prompts.fusion) == 0 and len(model.visual_prompts.fusion) == 0
    with torch.no_grad():
        text = clip.tokenize([f"a photo of a {name}." for name in BASE])
        expected_text = normalize(tiny_clip.encode_text(text))
        torch.testing.assert_close(model.class_text_features(), expected_text, rtol=1e-5, atol=1e-5)
        prompts = model.visual_prompts.ctx.unsqueeze(0)
        expected_image = normalize(clip_visual_with_prompts(tiny_clip.visual, images, prompts))
        image, frozen = model.image_features(images)
        torch.testing.assert_close(image, expected_image, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(frozen, normalize(tiny_clip.encode_image(images)), rtol=1e-5, atol=1e-5)
        scale = tiny_clip.logit_scale.exp()
        torch.testing.assert_close(model(images), scale * expected_image @ expected_text.t(), rtol=1e-4, atol=1e-4)


def test_features_fuse_with_frozen_clip_and_the_hand_template(tiny_clip, images):
    model = build(tiny_clip, template="a photo of a {}, a type of thing.")
    with torch.no_grad():
        hand = normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {n}, a type of thing." for n in BASE])))
        torch.testing.assert_close(model.hand_text_features, hand, rtol=1e-5, atol=1e-5)
        text = normalize(normalize(model.prompted_text_features()) + hand)
        torch.testing.assert_close(model.class_text_features(), text, rtol=1e-5, atol=1e-5)
        image = normalize(normalize(model.prompted_image_features(images)) + normalize(tiny_clip.encode_image(images)))
        expected = tiny_clip.logit_scale.exp() * image @ text.t()
        torch.testing.assert_close(model(images), expected, rtol=1e-4, atol=1e-4)
    assert "hand_text_features" not in model.state_dict()


def test_text_pass_padded_to_the_selected_slice_equals_the_77_token_pass(tiny_clip):
    model = build(tiny_clip, n_ctx=8)  # 1 + 2*8 = 17 > the longest EOS + 1: padding is read
    learner = model.text_prompts
    with torch.no_grad():
        short = learner.embeddings()
        assert short.shape[1] == 17 > int(learner.prompts.eos_positions.max()) + 1
        pad = learner.prompts.padding.expand(short.shape[0], 77 - short.shape[1], -1)
        full = torch.cat([short, pad], dim=1)
        injections = {layer: learner._inject(f) for layer, f in zip(learner.layers, learner.fusion)}
        eos = learner.prompts.eos_positions
        torch.testing.assert_close(
            model.text_encoder(short, eos, injections), model.text_encoder(full, eos, injections), rtol=1e-5, atol=1e-5
        )
        fast = model.class_text_features()
        slow = model.configure(eos_cut=False, fused=False).class_text_features()  # 77 tokens, CLIP's blocks
    assert learner.embeddings().shape[1] == 77
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


# ---- Token Fusion Module --------------------------------------------------------------------------


@pytest.mark.parametrize("width", [128, 192])
def test_tfm_output_has_the_prompts_shape(width):
    tfm = TokenFusion(width)
    assert tfm.attn.num_heads == width // 64
    selected, prompts = torch.randn(3, 4, width), torch.randn(3, 4, width)
    assert tfm(selected, prompts).shape == prompts.shape
    assert tfm.s1.item() == tfm.s2.item() == 0.75


@pytest.mark.parametrize("cross_sample", [False, True])
def test_tfm_attention_runs_within_each_sample(cross_sample):
    torch.manual_seed(0)
    tfm = TokenFusion(128, cross_sample=cross_sample)
    selected, prompts = torch.randn(3, 4, 128), torch.randn(3, 4, 128)
    changed_s, changed_p = selected.clone(), prompts.clone()
    changed_s[2], changed_p[2] = torch.randn(4, 128), torch.randn(4, 128)
    with torch.no_grad():
        same = torch.allclose(tfm(selected, prompts)[0], tfm(changed_s, changed_p)[0], atol=1e-6)
    assert same is not cross_sample  # the authors' code (OFFICIAL_COMPAT) mixes the samples of a batch


def test_tfm_with_half_scales_rounds_s1_s2_to_fp16_as_the_authors_code():
    torch.manual_seed(0)
    authors, rounded = TokenFusion(128, half_scales=True), TokenFusion(128)
    rounded.load_state_dict(authors.state_dict())
    with torch.no_grad():
        authors.s1.fill_(0.7001), authors.s2.fill_(0.8003)  # not held by fp16
        rounded.s1.copy_(authors.s1.half().float()), rounded.s2.copy_(authors.s2.half().float())
    selected, prompts = torch.randn(3, 4, 128), torch.randn(3, 4, 128)
    assert rounded.s1.item() != authors.s1.item()
    assert torch.equal(authors(selected, prompts), rounded(selected, prompts))
    assert authors(selected, prompts).dtype == torch.float32


@pytest.mark.parametrize("official_compat", [False, True])
def test_hand_crafted_features_follow_the_path(tiny_clip, official_compat):
    """The exact path encodes the template with CLIP's 77 tokens, bit for bit as the authors' encode_text;
    OFFICIAL_COMPAT normalizes once more, as the authors' forward does."""
    model = build(tiny_clip, official_compat=official_compat)
    with torch.no_grad():
        expected = normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {name}." for name in BASE])))
    expected = normalize(expected) if official_compat else expected
    fast = model.hand_text_features.clone()
    assert torch.equal(model.configure(eos_cut=False, fused=False).hand_text_features, expected)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(model.configure(eos_cut=True, fused=True).hand_text_features, fast)


def test_tfms_of_a_branch_start_identical_and_only_those_in_use_exist(tiny_clip):
    model = build(tiny_clip, layers=[1, 2])
    first, second = model.visual_prompts.fusion
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    assert len(build(tiny_clip, layers=[2]).text_prompts.fusion) == 1
    default = build(tiny_clip)
    assert default.text_prompts.layers == default.visual_prompts.layers == [1, 2]  # every block but the first


def test_predictions_depend_on_the_batch_only_with_official_compat(tiny_clip, images):
    for compat in (False, True):
        model = build(tiny_clip, official_compat=compat).eval()
        assert model.options.selection == ("batch" if compat else "image")
        with torch.no_grad(), model.cached_text_features():
            alone, together = model(images[:1])[0], model(images)[0]
        assert torch.allclose(alone, together, atol=1e-5) is not compat


# ---- visual token selection ---------------------------------------------------------------------


def test_per_image_selection_picks_each_images_own_tokens(tiny_clip, images):
    tokens = torch.zeros(2, 10, 8)
    tokens[0, [1, 2]] = 5.0
    tokens[1, [6, 9]] = 5.0
    assert salient_token_indices(tokens, 2).sort(dim=-1).values.tolist() == [[1, 2], [6, 9]]
    assert salient_token_indices(tokens, 2, per_image=False).shape == (2,)

    encoder = build(tiny_clip).image_encoder
    with torch.no_grad():
        x = encoder.visual.ln_pre(encoder.embed(images))
    per_image = salient_token_indices(x, 4).sort(dim=-1).values
    assert per_image.shape == (4, 4)
    assert len({tuple(row.tolist()) for row in per_image}) > 1


# ---- training ------------------------------------------------------------------------------------


@requires_dassl
def test_the_progress_bar_shows_seps_six_terms_in_100_columns(tiny_clip, images):
    """SEP's running averages in the bar, at 3 significant digits under short names: the whole bar line,
    as tqdm draws it for step 13 of 125 of epoch 12 of 50 on a 100-column terminal, is not cut."""
    import io

    from tqdm import tqdm

    from trainers.base import BAR_FORMAT, bar_postfix, short_number

    assert [short_number(v) for v in (4.0512, 12.5, 0.000781, 1.23456e-05, 100.0, 1e-5)] == [
        "4.05", "12.5", "7.81e-4", "1.23e-5", "100", "1e-5"]
    _, summary = build(tiny_clip, layers=[1, 2]).loss(images, LABELS)
    assert len(summary) == 6
    shown = bar_postfix(summary)
    assert shown.startswith("loss=") and " txt=" in shown and " vis=" in shown and " proto=" in shown
    assert f"ce={short_number(summary['ce'])} " in shown
    wide = {"loss": 12.3456, "acc": 33.333, "ce": 10.234, "text_cons": 0.0848, "visual_cons": 0.000492, "proto": 1.37}
    for postfix in (shown, bar_postfix(wide)):
        screen = io.StringIO()
        bar = tqdm(total=125, initial=12, desc="epoch 12/50", bar_format=BAR_FORMAT, file=screen, ncols=100,
                   mininterval=0)
        bar.set_postfix_str(postfix, refresh=False)
        bar.update(1)
        bar.close()
        drawn = [line for line in screen.getvalue().split("\r") if "13/125" in line][-1]
        assert drawn.rstrip().endswith(postfix + "]") and len(drawn.rstrip()) <= 100, drawn  # nothing cut



def test_gradients_reach_exactly_the_trainable_parts(tiny_clip, images):
    model = build(tiny_clip, layers=[1, 2])
    loss, summary = model.loss(images, LABELS)
    loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert with_grad == trainable
    prefixes = ("text_prompts.ctx", "visual_prompts.ctx", "text_prompts.fusion.", "visual_prompts.fusion.")
    prefixes += ("prototypes",)
    assert all(n.startswith(prefixes) for n in trainable)
    assert {n.split(".")[2] for n in trainable if ".fusion." in n} == {"0", "1"}
    assert all(p.grad is None for p in tiny_clip.parameters())  # nothing of CLIP
    assert set(summary) == {"loss", "acc", "ce", "text_cons", "visual_cons", "proto"}


def test_text_features_once_per_step_and_once_per_evaluation(tiny_clip, images, monkeypatch):
    model = build(tiny_clip)
    calls = []
    original = model.prompted_text_features
    monkeypatch.setattr(model, "prompted_text_features", lambda: calls.append(1) or original())
    model.loss(images, LABELS)
    assert len(calls) == 1
    calls.clear()
    with torch.no_grad(), model.cached_text_features():
        model(images[:2]), model(images[2:])
    assert len(calls) == 1


def test_a_few_steps_lower_the_loss(tiny_clip, images):
    model = build(tiny_clip)
    losses = train_steps(model, images, LABELS, torch.optim.Adam(learned_parameters(model), lr=2e-3, eps=1e-3), 8)
    assert losses[-1] < losses[0] - 0.1, losses


def test_prototypes_come_from_class_means_or_default_to_the_hand_template(tiny_clip, images):
    model = sep(tiny_clip, BASE)
    torch.testing.assert_close(model.prototypes.detach(), model.hand_text_features)
    with pytest.warns(UserWarning, match="init_prototypes"):
        model.loss(images, LABELS)
    features = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    assert class_means(features, torch.tensor([0, 0, 1]), 2).tolist() == [[2.0, 0.0], [0.0, 2.0]]
    with pytest.raises(ValueError, match=r"class\(es\) \[2\]"):
        class_means(features, torch.tensor([0, 0, 1]), 3)
    model.init_prototypes(torch.randn(4, 32) * 7)
    torch.testing.assert_close(model.prototypes.norm(dim=-1), torch.ones(4))


def test_base_checkpoint_loads_for_new_classes_and_reproduces_base_logits(tiny_clip, images):
    trained = build(tiny_clip)
    train_steps(trained, images, LABELS, torch.optim.Adam(learned_parameters(trained), lr=1e-2), 2)
    state = trained.trainable_state_dict()
    assert "prototypes" not in state and "text_prompts.ctx" in state
    assert not any("hand" in name or "prompts.prefix" in name for name in state)

    new = sep(tiny_clip, NEW)  # eval-only: prototypes never initialised, not needed
    new.load_trainable_state_dict(state)
    with torch.no_grad(), new.eval().cached_text_features():
        assert new(images).shape == (4, len(NEW))

    again = sep(tiny_clip, BASE)
    again.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(images), trained.eval()(images))


def test_bf16_autocast_keeps_every_loss_term_finite(tiny_clip, images):
    model = build(tiny_clip)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, summary = model.loss(images, LABELS)
    loss.backward()
    assert torch.isfinite(loss)
    for key in ("ce", "text_cons", "visual_cons", "proto"):
        assert summary[key] > 0 and summary[key] == summary[key] and abs(summary[key]) < 1e4
    expected = summary["ce"] + 8.0 * summary["text_cons"] + 6.0 * summary["visual_cons"] + summary["proto"]
    assert summary["loss"] == pytest.approx(expected, rel=1e-4)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ---- configuration errors ------------------------------------------------------------------------


@pytest.mark.parametrize("layers, message", [
    ([1, 3, 5], r"^TRAINER\.SEP\.LAYERS \[1, 3, 5\] holds blocks out of range: 3, 5 for the text encoder of this CLIP "
                r"\(3 blocks: indices must be in 0\.\.2\); 3, 5 for the image encoder of this CLIP \(3 blocks: "
                r"indices must be in 0\.\.2\)\.$"),
    ([-1], r"indices must be in 0\.\.2"),
    ([1, 1], "more than once"),
    ("1,2", r"TRAINER.SEP.LAYERS is .1,2.; it must be a list of integers"),
])
def test_bad_layers_give_one_clear_error(tiny_clip, layers, message):
    with pytest.raises(ConfigError, match=message):
        sep(tiny_clip, BASE, layers=layers)


def test_prompts_that_do_not_fit_the_context_give_one_clear_error(tiny_clip):
    with pytest.raises(PromptLengthError, match=r"N_CTX 39 is too long.*N_CTX at most 38"):
        sep(tiny_clip, BASE, n_ctx=39)
    with pytest.raises(PromptLengthError, match="more than the 77-token context"):
        sep(tiny_clip, ["a very long class name " * 10], n_ctx=38)
    with pytest.raises(UserError, match="N_CTX_V must be an integer in 1..17"):
        sep(tiny_clip, BASE, n_ctx_v=18)
    with pytest.raises(ConfigError, match="VISUAL_SELECTION"):
        sep(tiny_clip, BASE, visual_selection="pixel")
    assert sep(tiny_clip, BASE, n_ctx=38).text_prompts.embeddings().shape[1] == 77


# ---- the Dassl trainer ---------------------------------------------------------------------------


@requires_dassl
def test_checkpoint_prototypes_that_do_not_fit_are_one_line_errors(tiny_clip):
    from clipprompt.errors import CheckpointError
    from trainers.sep import SEP as SEPTrainer

    trainer = SEPTrainer.__new__(SEPTrainer)  # restoring needs only the model and the device
    trainer.model, trainer.device = build(tiny_clip), torch.device("cpu")
    prototypes = torch.randn(len(BASE), 32)
    for extras, message in [
        ({}, "ckpt holds no SEP prototypes (saved by an older version or another trainer); delete its folder"),
        ({"prototypes": prototypes, "classnames": NEW}, "ckpt holds SEP prototypes of other classes than this run's."),
        ({"prototypes": prototypes[:, :8], "classnames": BASE}, "ckpt: Prototypes (4, 8) do not fit (4, 32)."),
    ]:
        with pytest.raises(CheckpointError) as info:
            trainer.restore_training_extras(extras, "ckpt")
        assert str(info.value).startswith(message)
    trainer.restore_training_extras({"prototypes": prototypes, "classnames": BASE}, "ckpt")
    assert torch.equal(trainer.model.prototypes.detach(), prototypes) and trainer._prototypes_restored


@requires_dassl
def test_trainer_initialises_prototypes_trains_resumes_and_evaluates(tmp_path, tiny_clip_path, monkeypatch):
    import train
    import trainers  # noqa: F401  (registers the trainers)
    import datasets  # noqa: F401  (registers the datasets)
    from dassl.engine import build_trainer

    from clipprompt.testing import make_tiny_dataset
    from clipprompt.errors import RunInterrupted
    from clipprompt.runs.stopping import StopRequests
    from trainers.sep import SEP as SEPTrainer

    root = tmp_path / "data"
    make_tiny_dataset(str(root), "Caltech101", num_classes=4, images_per_class=6)
    out = tmp_path / "out"

    def trainer(epochs, *flags):
        args = train.parse_args([
            *flags, "--root", str(root), "--trainer", "SEP", "--seed", "1", "--output-dir", str(out),
            "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
            "--config-file", str(REPO / "configs/trainers/SEP/vit_b16_ep50_batch32.yaml"),
            "MODEL.BACKBONE.NAME", tiny_clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
            "DATALOADER.TEST.BATCH_SIZE", "8", "DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", str(epochs),
            "TRAINER.SEP.PREC", "bf16",
        ])
        return build_trainer(train.setup_cfg(args))

    first = trainer(2)
    assert first.optim.param_groups[0]["eps"] == 1e-3
    inits = []
    original = SEPTrainer.init_prototypes
    monkeypatch.setattr(SEPTrainer, "init_prototypes", lambda self: inits.append(1) or original(self))
    first.stops = StopRequests()
    first.stops.requested = "SIGTERM"  # as if signalled: stops after its step (the only one of epoch 1)
    with pytest.raises(RunInterrupted):
        first.train()
    assert inits == [1] and first.model.prototypes_initialized
    saved_files = sorted(p.name for p in (out / "model").iterdir())
    assert saved_files == ["checkpoint", "model.pth.tar-1"]  # one file: the prototypes are inside
    saved = torch.load(out / "model" / "model.pth.tar-1", weights_only=True)["training"]["prototypes"]
    torch.testing.assert_close(saved, first.model.prototypes.detach())

    resumed = trainer(2)  # continues in the same folder: the trained prototypes come back
    inits.clear()
    resumed.train()
    assert inits == [] and resumed._prototypes_restored

    evaluation = trainer(2, "--eval-only")  # eval-only runs never compute class means
    evaluation.load_model(str(out))
    evaluation.test()
    assert inits == [] and not evaluation.model.prototypes_initialized
