"""MPL (fine-grained text prompt + text-reorganized visual prompt) on the tiny CLIP, plus its trainer."""

import copy
import json
from pathlib import Path

import pytest
import torch

from clipprompt.errors import ConfigError
from clipprompt.models import MPL, CoOp
from clipprompt.models.coop import CoOpOptions
from clipprompt.models.mpl import TVP, MPLOptions, text_to_image_loss
from clipprompt.prompts import ClassPrompts
from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl

from model_checks import learned_parameters, train_steps

BASE = ["dog", "cat", "fire truck", "sea lion", "snowy owl", "tram"]
NEW = ["red fox", "hot air balloon", "maple leaf"]
LABELS = torch.tensor([0, 1, 2, 3])
MODES = ["mlp", "attn"]


NESTED = {"ftp_mode": ("ftp", "mode"), "ftp_reduction": ("ftp", "reduction"), "ftp_heads": ("ftp", "attn_heads"),
          "topk": ("tvp", "topk"), "tau": ("tvp", "tau"), "symmetric": ("loss", "symmetric")}


def options(**kwargs) -> MPLOptions:
    """MPLOptions from flat names (ftp_mode= for FTP.MODE, topk= for TVP.TOPK, ...)."""
    result = MPLOptions()
    for name, value in kwargs.items():
        node, key = NESTED.get(name, (None, name))
        setattr(getattr(result, node) if node else result, key, value)
    return result


def build(clip, classnames=BASE, **kwargs):
    torch.manual_seed(0)
    return MPL(clip, classnames, options(**kwargs))


def same_weights(model, clip, classnames, **kwargs):
    other = MPL(clip, classnames, options(**kwargs))
    other.load_trainable_state_dict(model.trainable_state_dict())
    return other


# ---- FTP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_ftp_gives_each_token_its_own_image_derived_shift(tiny_clip, images, mode):
    model = build(tiny_clip, ftp_mode=mode)
    with torch.no_grad():
        out = model.encode(images)
    n, width = model.ctx.shape
    assert out.shifts.shape == (4, n, width)
    for b in range(4):  # one distinct semantic per token, not one vector shared by all (CoCoOp)
        for j in range(n):
            for k in range(j + 1, n):
                assert not torch.allclose(out.shifts[b, j], out.shifts[b, k], atol=1e-4)
    for b in range(1, 4):  # the shifts and so the class features depend on the image
        assert not torch.allclose(out.shifts[0], out.shifts[b], atol=1e-4)
        assert not torch.allclose(out.text_features[0], out.text_features[b], atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_zero_last_ftp_layer_gives_coops_text_side(tiny_clip, images, mode):
    model = build(tiny_clip, ftp_mode=mode)
    torch.nn.init.normal_(model.ctx, std=0.02)
    with torch.no_grad():
        model.ftp.last_layer.weight.zero_()
        model.ftp.last_layer.bias.zero_()
        coop = CoOp(tiny_clip, BASE, CoOpOptions(n_ctx=4))
        coop.ctx.copy_(model.ctx)
        expected = coop.class_text_features()
        out = model.encode(images)
    assert out.shifts.abs().max() == 0
    for b in range(4):
        torch.testing.assert_close(out.text_features[b], expected, rtol=1e-5, atol=1e-5)


# ---- TVP ------------------------------------------------------------------------------------


def test_tvp_uses_exactly_the_top_k_classes(tiny_clip, images):
    model = build(tiny_clip, topk=2)
    with torch.no_grad():
        out = model.encode(images)
        tvp = model.tvp
        indices = out.selection.indices
        assert indices.shape == (4, 2)
        assert torch.equal(indices, out.selection.scores.topk(2, dim=1).indices)
        torch.testing.assert_close(out.selection.weights.sum(1), torch.ones(4))

        # move every class outside image b's top-K to a direction of score -1: nothing changes
        outside = torch.ones(4, len(BASE), dtype=torch.bool).scatter_(1, indices, False)
        text = out.text_features.clone()
        text[outside] = -out.frozen_features.unsqueeze(1).expand_as(text)[outside]
        prompts, selection = tvp(out.frozen_features, text)
        assert torch.equal(selection.indices, indices)
        assert torch.equal(prompts, out.visual_prompts)

        # moving a kept class (not the best one) changes the prompt
        kept = indices[:, 1]
        text = out.text_features.clone()
        text[torch.arange(4), kept] = -out.frozen_features
        assert not torch.allclose(tvp(out.frozen_features, text)[0], out.visual_prompts)


def test_a_class_outside_the_top_k_does_not_change_the_prompted_image(tiny_clip, images):
    model = build(tiny_clip, topk=2)
    with torch.no_grad():
        out = model.encode(images[:1])
        outside = next(i for i in range(len(BASE)) if i not in out.selection.indices[0].tolist())
        for name in ["garden snail", "grand piano", "stop sign", "paper lantern"]:
            renamed = BASE[:outside] + [name] + BASE[outside + 1 :]
            other = same_weights(model, tiny_clip, renamed, topk=2).encode(images[:1])
            if torch.equal(other.selection.indices, out.selection.indices):
                break
        else:
            pytest.fail("every renamed class entered the top-K")
        assert not torch.allclose(other.text_features[0, outside], out.text_features[0, outside])
        torch.testing.assert_close(other.visual_prompts, out.visual_prompts, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(other.image_features, out.image_features, rtol=1e-5, atol=1e-6)


def test_top_k_is_capped_at_the_class_count(tiny_clip, images):
    model = build(tiny_clip, NEW, topk=50)
    with torch.no_grad():
        out = model.encode(images)
    assert out.selection.indices.shape == (4, len(NEW))
    assert out.logits.shape == (4, len(NEW))


def test_tvp_selection_has_no_gradient_but_its_weights_do():
    tvp = TVP(embed_dim=8, vision_width=16, n_ctx_v=2, topk=2, tau=0.5)
    v = torch.randn(3, 8)
    text = torch.nn.functional.normalize(torch.randn(3, 5, 8), dim=-1).requires_grad_()
    prompts, selection = tvp(v, text)
    assert prompts.shape == (3, 2, 16)
    selection.weights[:, 0].sum().backward()  # through the softmax weights only
    grad_rows = text.grad.abs().sum(-1) > 0
    kept = torch.zeros(3, 5, dtype=torch.bool).scatter_(1, selection.indices, True)
    assert torch.equal(grad_rows, kept)


# ---- exactness of the fast paths -----------------------------------------------------------


@pytest.mark.parametrize("chunk", [5, 13])  # 1 image a group split 5 + 1; 2 images a group
def test_chunking_changes_nothing(tiny_clip, images, chunk):
    whole = build(tiny_clip, text_chunk=0)
    chunked = same_weights(whole, tiny_clip, BASE, text_chunk=chunk)
    with torch.no_grad():
        torch.testing.assert_close(chunked(images), whole(images), rtol=1e-5, atol=1e-5)


def test_eos_cut_equals_the_full_77_token_pass(tiny_clip, images):
    model = build(tiny_clip)
    full = copy.deepcopy(model)
    full.prompts = ClassPrompts(full.text_encoder, BASE, model.ctx.shape[0], cut=False)
    assert full.prompts.length == 77 and model.prompts.length < 20
    with torch.no_grad():
        cut_out, full_out = model.encode(images), full.encode(images)
    torch.testing.assert_close(cut_out.text_features, full_out.text_features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cut_out.logits, full_out.logits, rtol=1e-4, atol=1e-4)


# ---- training -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_gradients_reach_exactly_ctx_ftp_and_tvp(tiny_clip, images, mode):
    model = build(tiny_clip, ftp_mode=mode)
    loss, summary = model.loss(images, LABELS)
    loss.backward()
    reached = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached == set(model.trainable_state_dict())
    assert {n.split(".")[0] for n in reached} == {"ctx", "ftp", "tvp"}
    assert all(p.grad is None for p in tiny_clip.parameters())
    assert set(summary) == {"loss", "acc"}


@pytest.mark.parametrize("mode, symmetric", [("mlp", True), ("attn", False)])
def test_a_few_steps_lower_the_loss(tiny_clip, images, mode, symmetric):
    model = build(tiny_clip, ftp_mode=mode, symmetric=symmetric)
    losses = train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=0.05), 4)
    assert losses[-1] < losses[0] - 0.05, losses


def test_symmetric_loss_adds_the_text_to_image_direction(tiny_clip, images):
    model = build(tiny_clip, symmetric=True)
    labels = torch.tensor([0, 1, 1, 3])
    with torch.no_grad():
        loss, summary = model.loss(images, labels)
        out = model.encode(images)
        ce = torch.nn.functional.cross_entropy(out.logits, labels)
        own = out.text_features[torch.arange(4), labels]
        t2i = model.logit_scale * own @ out.image_features.t()
        targets = torch.tensor([[1, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0.5, 0.5, 0], [0, 0, 0, 1]])
        expected = -(targets * t2i.log_softmax(1)).sum(1).mean()
        one = text_to_image_loss(model.encode(images[:1]), labels[:1], model.logit_scale)
    torch.testing.assert_close(loss, ce + expected, rtol=1e-5, atol=1e-5)
    assert summary["loss_t2i"] == pytest.approx(expected.item(), rel=1e-5)
    assert one.item() == 0  # nothing to contrast with a batch of one


@pytest.mark.parametrize("mode", MODES)
def test_save_load_for_new_classes_and_reproduce(tiny_clip, images, mode):
    model = build(tiny_clip, ftp_mode=mode)
    train_steps(model, images, LABELS, torch.optim.SGD(learned_parameters(model), lr=0.05), 2)
    state = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    model.eval()
    with torch.no_grad():
        trained = model(images)
        new = same_weights(model, tiny_clip, NEW, ftp_mode=mode).eval()
        assert new(images).shape == (4, len(NEW))
        again = MPL(tiny_clip, BASE, options(ftp_mode=mode)).eval()
        assert not torch.allclose(again(images), trained)
        again.load_trainable_state_dict(state)
        torch.testing.assert_close(again(images), trained)


def test_bf16_autocast(tiny_clip, images):
    """PREC bf16 (fp32 weights, bf16 autocast), the reduced precision the CPU supports."""
    model = build(tiny_clip)
    with torch.no_grad():
        expected = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model.encode(images)
    assert out.logits.isfinite().all() and out.logits.shape == expected.shape
    assert (out.logits.float() - expected).abs().max() < 0.1 * expected.abs().max()
    assert out.visual_prompts.shape == (4, 4, 128)


# ---- configuration --------------------------------------------------------------------------


def test_config_node_is_generated_from_the_options():
    node = MPLOptions.to_node()
    assert node.N_CTX == 4 and node.CTX_INIT == "a photo of a" and node.FTP.MODE == "mlp"
    assert node.TVP.TOPK == 5 and node.TVP.TAU == 0.07 and node.LOSS.SYMMETRIC is False
    assert node.TEXT_CHUNK == 4096 and node.PREC == "fp16"
    node.FTP.MODE = "attn"
    assert MPLOptions.from_node(node).ftp.mode == "attn"


@pytest.mark.parametrize("option, value, message", [
    ("ftp_mode", "conv", "TRAINER.MPL.FTP.MODE is 'conv'; use one of mlp, attn."),
    ("topk", 0, "TRAINER.MPL.TVP.TOPK is 0; it must be >= 1"),
    ("topk", 2.5, "TRAINER.MPL.TVP.TOPK is 2.5; it must be an integer"),
    ("tau", 0.0, "TRAINER.MPL.TVP.TAU is 0.0; it must be > 0"),
    ("tau", -1, "TRAINER.MPL.TVP.TAU is -1"),
    ("n_ctx_v", 0, "TRAINER.MPL.N_CTX_V is 0; it must be >= 1"),
    ("text_chunk", -1, "TRAINER.MPL.TEXT_CHUNK is -1"),
    ("ftp_reduction", 0, "TRAINER.MPL.FTP.REDUCTION is 0"),
    ("ftp_heads", -2, "TRAINER.MPL.FTP.ATTN_HEADS is -2"),
    ("symmetric", "yes", "TRAINER.MPL.LOSS.SYMMETRIC is 'yes'"),
])
def test_config_errors(tiny_clip, option, value, message):
    with pytest.raises(ConfigError) as info:
        MPL(tiny_clip, BASE, options(**{option: value}))
    assert message in str(info.value)


def test_ctx_init_decides_the_context_length_and_heads_must_divide_the_width(tiny_clip):
    with pytest.raises(ConfigError, match=r"TRAINER.MPL.N_CTX is 0; it must be >= 1"):
        MPL(tiny_clip, BASE, options(n_ctx=0, ctx_init=""))
    assert MPL(tiny_clip, BASE, options(n_ctx=16, ctx_init="a photo of a")).ctx.shape[0] == 4  # CTX_INIT decides
    assert MPL(tiny_clip, BASE, options(n_ctx=3, ctx_init="")).ctx.shape[0] == 3
    with pytest.raises(ConfigError, match="ATTN_HEADS is 3; it must divide the text width 128"):
        MPL(tiny_clip, BASE, options(ftp_mode="attn", ftp_heads=3))


# ---- the Dassl trainer ----------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
TINY = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "8"]


def train_in_process(tmp_path, clip_path, out, *extra):
    """train.py's config and Dassl's trainer, in this process (a fresh one adds nothing here)."""
    import datasets  # noqa: F401  (registers the datasets)
    import train
    import trainers  # noqa: F401  (registers the trainers)
    from trainers._dassl import build_trainer

    root = tmp_path / "data"
    make_tiny_dataset(str(root), "Caltech101", num_classes=6, images_per_class=6)
    args = train.parse_args([
        "--root", str(root), "--trainer", "MPL", "--seed", "1",
        "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
        "--config-file", str(REPO / "configs/trainers/MPL/vit_b16_c4_ep10_batch1_ctxv1.yaml"),
        "--output-dir", str(out), "MODEL.BACKBONE.NAME", clip_path, *TINY, *extra,
    ])
    trainer = build_trainer(train.setup_cfg(args))
    trainer.train()
    return trainer


@requires_dassl
def test_trainer_runs_an_epoch_on_tiny_caltech101(tmp_path, tiny_clip_path):
    out = tmp_path / "mpl"
    trainer = train_in_process(tmp_path, tiny_clip_path, out, "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "2",
                               "DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.MPL.FTP.MODE", "attn")
    assert trainer.model.ftp.mode == "attn" and trainer.model.num_classes == 3
    result = json.loads((out / "result.json").read_text())
    assert result["trainer"] == "MPL" and result["num_classes"] == 3 and result["epoch"] == 1
    assert "MODE: attn" in result["config"]
    state = torch.load(out / "model" / "model.pth.tar-1", map_location="cpu", weights_only=False)["state_dict"]
    assert {k.split(".")[0] for k in state} == {"ctx", "ftp", "tvp"} and "ftp.queries" in state


@requires_dassl
def test_trainer_checks_its_config_before_loading_anything():
    from clipprompt.config import add_project_config, merge_from_list
    from trainers._dassl import get_cfg_default
    from trainers.mpl import MPL as MPLTrainer

    cfg = add_project_config(get_cfg_default())
    merge_from_list(cfg, ["TRAINER.MPL.TVP.TOPK", "0"])
    trainer = MPLTrainer.__new__(MPLTrainer)  # check_cfg is the first thing Dassl's __init__ runs
    with pytest.raises(ConfigError, match=r"TRAINER.MPL.TVP.TOPK is 0; it must be >= 1"):
        trainer.check_cfg(cfg)
    merge_from_list(cfg, ["TRAINER.MPL.TVP.TOPK", "3", "TRAINER.MPL.FTP.MODE", "attn"])
    trainer.check_cfg(cfg)
