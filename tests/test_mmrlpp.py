"""MMRL++ (MMRL with shared residual maps, a token residual β and a low-rank P_r) on the tiny CLIP."""

import pytest
import torch
import torch.nn.functional as F

from clipprompt.errors import ConfigError
from clipprompt.models import MMRL, MMRLOptions, MMRLpp, MMRLppOptions
from clipprompt.options import OPTIONS
from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import TINY_OVERRIDES, run_base2new_scripts, train_in_process

from model_checks import fast_and_slow, learned_parameters, train_steps

BASE = ["dog", "cat", "fire_truck", "sea lion", "snowy owl", "tram"]
LABELS = torch.tensor([0, 1, 2, 3])
TEMPLATE = "a photo of a {}."
LEARNED = ({"rep_tokens", "proj_lora_a", "proj_lora_b"}
           | {f"to_{side}.weight" for side in ("image", "text")}
           | {f"to_{side}.{part}.{k}" for side in ("image", "text") for part in ("a", "b", "bias") for k in (0, 1)})
SMALL = {"rep_layers": [2, 3], "n_rep_tokens": 3, "rep_dim": 16}


def build(clip_model, classnames=BASE, **options):
    torch.manual_seed(0)
    return MMRLpp(clip_model, classnames, MMRLppOptions(**{**SMALL, **options}), template=TEMPLATE)


def perturb_zero_factors(model):
    """The B factors start at zero (so A gets no gradient yet); a trained model's are not."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "proj_lora_b" or ".b." in name:
                p.copy_(torch.randn_like(p) * 0.05)


def test_options_are_the_authors_recipe():
    assert OPTIONS["MMRLPP"] is MMRLppOptions and issubclass(MMRLppOptions, MMRLOptions)
    options = MMRLppOptions()
    assert (options.beta, options.res_lora_dim, options.proj_lora_dim) == (0.9, 4, 64)
    assert (options.alpha, options.reg_weight, options.n_rep_tokens, options.rep_dim, options.prec) == (0.7, 1.0, 5, 512, "amp")
    assert options.rep_layers == [6, 7, 8, 9, 10, 11, 12]


def test_maps_share_one_weight_and_start_as_one_linear_map(tiny_clip):
    model = build(tiny_clip, res_lora_dim=2, proj_lora_dim=8)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == LEARNED
    maps = model.to_image
    assert maps.weight.shape == (128, 16) and maps.a[0].shape == (128, 2) and maps.b[1].shape == (2, 16)
    assert model.proj_lora_a.shape == (128, 8) and model.proj_lora_b.shape == (8, tiny_clip.visual.output_dim)
    first, second = model.image_tokens()
    assert torch.equal(first, second)  # B = 0: every layer starts from the same map, as in MMRL
    torch.testing.assert_close(first, F.linear(model.rep_tokens, maps.weight, maps.bias[0]))
    assert torch.equal(model.rep_projection(), tiny_clip.visual.proj)  # P_r starts as CLIP's projection
    perturb_zero_factors(model)
    first, second = model.image_tokens()
    torch.testing.assert_close(second, model.rep_tokens @ (maps.weight + maps.a[1] @ maps.b[1]).t() + maps.bias[1])
    assert not torch.allclose(first, second)
    torch.testing.assert_close(model.rep_projection(), tiny_clip.visual.proj + model.proj_lora_a @ model.proj_lora_b)


def test_later_layers_keep_part_of_the_previous_tokens(tiny_clip):
    """Inserted after [CLS] before the first representation block; before the later ones β·new + (1 − β)·previous."""
    model = build(tiny_clip, beta=0.25)
    perturb_zero_factors(model)
    first, second = (t.detach() for t in model.image_tokens())
    injections = model.injections([first, second])
    x = torch.randn(4, 17, 128)
    grown = injections[1](x)
    assert grown.shape == (4, 20, 128) and torch.equal(grown[:, 1:4], first.expand(4, 3, 128))
    blended = injections[2](grown)
    torch.testing.assert_close(blended[:, 1:4], 0.25 * second + 0.75 * grown[:, 1:4], rtol=0, atol=0)
    assert torch.equal(blended[:, :1], grown[:, :1]) and torch.equal(blended[:, 4:], grown[:, 4:])
    replaced = build(tiny_clip, beta=1.0).injections([first, second])[2](grown)  # β = 1: MMRL's replacement
    assert torch.equal(replaced[:, 1:4], second.expand(4, 3, 128))


def test_with_beta_1_and_zero_residuals_it_is_mmrl(tiny_clip, images):
    """MMRL++ at β = 1 with B = 0 computes MMRL with P_r = CLIP's projection: the three changes and nothing else."""
    plus = build(tiny_clip, beta=1.0)
    mmrl = MMRL(tiny_clip, BASE, MMRLOptions(**SMALL), template=TEMPLATE)
    with torch.no_grad():
        mmrl.rep_tokens.copy_(plus.rep_tokens)
        mmrl.proj_rep.copy_(tiny_clip.visual.proj)
        for ours, theirs in ((plus.to_image, mmrl.to_image), (plus.to_text, mmrl.to_text)):
            for k, layer in enumerate(theirs):
                layer.weight.copy_(ours.weight)
                layer.bias.copy_(ours.bias[k])
    loss, summary = plus.loss(images, LABELS)
    expected, expected_summary = mmrl.loss(images, LABELS)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
    assert summary == pytest.approx(expected_summary, rel=1e-5, abs=1e-7)
    assert not torch.allclose(build(tiny_clip, beta=0.5).loss(images, LABELS)[0], loss)  # β matters


def test_gradients_reach_exactly_the_learned_parameters(tiny_clip, images):
    model = build(tiny_clip)
    perturb_zero_factors(model)
    loss, _ = model.loss(images, LABELS)
    loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == (name in LEARNED), name
    assert not tiny_clip.visual.proj.requires_grad  # P_r's base stays CLIP's


def test_loss_falls_on_a_tiny_task(tiny_clip, images):
    model = build(tiny_clip, reg_weight=0.1)
    losses = train_steps(model, images, LABELS, torch.optim.AdamW(learned_parameters(model), lr=1e-2), 30)
    assert losses[-1] < 0.5 * losses[0]


def test_save_load_round_trip(tiny_clip, images):
    model = build(tiny_clip)
    perturb_zero_factors(model)
    with torch.no_grad():
        for p in learned_parameters(model):
            p.add_(torch.randn_like(p) * 0.1)
    state = model.trainable_state_dict()
    assert set(state) == LEARNED
    again = build(tiny_clip)
    again.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images))
        assert not torch.allclose(build(tiny_clip)(images), model(images))


def test_fast_paths_equal_slow_ones(tiny_clip, images):
    model = build(tiny_clip, beta=0.5)
    perturb_zero_factors(model)
    fast, slow = fast_and_slow(model, images, LABELS)
    torch.testing.assert_close(fast.loss, slow.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-5, atol=1e-5)
    for name, grad in slow.grads.items():
        assert (fast.grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


def test_errors_name_the_keys(tiny_clip):
    with pytest.raises(ConfigError) as info:
        build(tiny_clip, rep_layers=[3, 4])
    assert str(info.value) == (
        "TRAINER.MMRLPP.REP_LAYERS reaches layer 4; this CLIP's encoders have 3 (text) and 3 (image) blocks.")
    with pytest.raises(ConfigError) as info:
        MMRLppOptions(rep_layers=[3, 2]).validate()
    assert str(info.value) == "TRAINER.MMRLPP.REP_LAYERS [3, 2] must be a non-empty ascending list of layers counted from 1."
    with pytest.raises(ConfigError) as info:
        MMRLppOptions(beta=1.5).validate()
    assert str(info.value) == "TRAINER.MMRLPP.BETA is 1.5; it must be <= 1."
    tiny_clip.visual.proj = None
    with pytest.raises(ConfigError) as info:
        build(tiny_clip)
    assert str(info.value) == "MMRLpp needs an image tower with a projection (its P_r is a residual on it)."


# ---- Dassl end to end -------------------------------------------------------------------------


@requires_dassl
def test_bad_beta_exits_2_in_one_line(tmp_path, capsys, tiny_clip_path):
    data = tmp_path / "data"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=3)
    status = train_in_process([
        "--root", str(data), "--trainer", "MMRLpp", "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/MMRLpp/vit_b16.yaml", "--output-dir", str(tmp_path / "out"),
        "MODEL.BACKBONE.NAME", tiny_clip_path, *TINY_OVERRIDES, "DATASET.NUM_SHOTS", "1", "TRAINER.MMRLPP.BETA", "-0.1",
    ])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.strip() == "error: TRAINER.MMRLPP.BETA is -0.1; it must be >= 0."


@requires_dassl
def test_base2new_scripts_on_tiny_caltech101(tmp_path, tiny_clip_path):
    state = run_base2new_scripts("mmrlpp", "MMRLpp", tmp_path, tiny_clip_path, "TRAINER.MMRLPP.REP_LAYERS", "[2, 3]",
                                 "TRAINER.MMRLPP.REP_DIM", "16")
    assert set(state) == LEARNED
    assert state["rep_tokens"].shape == (5, 16) and state["to_text.a.1"].shape == (128, 4)
    assert state["proj_lora_b"].abs().sum() > 0  # trained
    (train_dir,) = (tmp_path / "out").glob("base2new/train_base/caltech101/shots_2/MMRLpp/vit_b16/seed1")
    checkpoint = torch.load(train_dir / "model" / "model.pth.tar-1", map_location="cpu", weights_only=False)
    config = checkpoint["config"]
    assert (config["TRAINER.MMRLPP.BETA"], config["TRAINER.MMRLPP.REG_WEIGHT"]) == (0.6, 3.0)  # the authors' Caltech101
    (test_dir,) = (tmp_path / "out").glob("base2new/test_new/caltech101/shots_2/MMRLpp/vit_b16/seed1")
    log = "\n".join(path.read_text() for path in test_dir.glob("log.txt*"))
    assert "MMRLpp evaluation head: class token (weights trained on other classes)" in log


@pytest.mark.parametrize("script, args, keys", [
    ("xd_train.sh", ["1"], "TRAINER.MMRLPP.BETA 0.9 TRAINER.MMRLPP.REG_WEIGHT 0.1"),
    ("xd_test.sh", ["eurosat", "1"], "TRAINER.MMRLPP.BETA 0.3"),  # the evaluated dataset's β, as their TASK CD
    ("xd_test.sh", ["imagenet_a", "1"], "TRAINER.MMRLPP.BETA 0.8"),
    ("few_shot.sh", ["dtd", "1", "4"], "TRAINER.MMRLPP.BETA 0.9 TRAINER.MMRLPP.REG_WEIGHT 7.0"),
    ("base2new_test.sh", ["food101", "1"], "TRAINER.MMRLPP.BETA 0.1 TRAINER.MMRLPP.REG_WEIGHT 1.0"),
])
def test_wrappers_add_the_authors_keys_per_protocol_before_the_users(tmp_path, script, args, keys):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OUTPUT": str(tmp_path), "DRY_RUN": "1", "PYTHON": sys.executable}
    run = subprocess.run(["bash", f"scripts/mmrlpp/{script}", *args, "OPTIM.LR", "0.01"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f" {keys} OPTIM.LR 0.01" in run.stdout and "--trainer MMRLpp" in run.stdout
