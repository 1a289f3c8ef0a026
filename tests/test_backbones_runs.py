"""Other backbones through train.py and the protocol scripts: CoOp, KgCoOp and zero-shot CLIP base-to-new
on a tiny random ResNet CLIP, CoOp on a tiny open_clip ViT, and a method that prompts image tokens
refused on the ResNet in one line (status 2, no traceback)."""

import json

import torch

from clipprompt.backbones.random_clip import save_random_clip, save_random_openclip
from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import TINY_OVERRIDES, run_base2new_scripts, run_script, train_in_process


@requires_dassl
def test_coop_kgcoop_and_zeroshot_run_base_to_new_on_a_resnet_clip(tmp_path):
    rn = save_random_clip(str(tmp_path / "tiny_rn.pt"), "tiny-rn")
    coop = run_base2new_scripts("coop", "CoOp", tmp_path / "coop", rn, "TRAINER.COOP.N_CTX", "4")
    assert coop["ctx"].shape == (4, 128)
    kgcoop = run_base2new_scripts("kgcoop", "KgCoOp", tmp_path / "kgcoop", rn)
    assert kgcoop["ctx"].shape == (4, 128)

    data, out, features = tmp_path / "zs" / "data", tmp_path / "zs" / "out", tmp_path / "features"
    make_tiny_dataset(str(data), "Caltech101", num_classes=6, images_per_class=6)
    env = {"DATA": str(data), "OUTPUT": str(out), "PYTHON": "python3"}
    run_script("scripts/zeroshot/base2new_test.sh", "caltech101", "MODEL.BACKBONE.NAME", rn, *TINY_OVERRIDES,
               "MODEL.FEATURE_CACHE_DIR", str(features), env=env)
    results = [json.loads(p.read_text()) for p in sorted(out.rglob("result.json"))]
    assert sorted(r["subsample_classes"] for r in results) == ["base", "new"]
    assert all(r["trainer"] == "ZeroshotCLIP" and r["backbone"] == rn for r in results)
    # the frozen features are cached under the backbone's kind
    keys = [json.loads(torch.load(p, weights_only=True)["key"]) for p in sorted(features.glob("*.pt"))]
    assert len(keys) == 2 and all(key["kind"] == "openai-resnet" for key in keys)


@requires_dassl
def test_coop_few_shot_with_the_authors_rn50_config(tmp_path):
    """configs/trainers/CoOp/rn50_ep50_ctxv1.yaml as the script picks it (CFG): the authors' transforms,
    context from words and best-val model, on the tiny RN50-shaped CLIP."""
    rn = save_random_clip(str(tmp_path / "tiny_rn.pt"), "tiny-rn")
    data, out = tmp_path / "data", tmp_path / "out"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=4)
    env = {"DATA": str(data), "OUTPUT": str(out), "PYTHON": "python3", "CFG": "rn50_ep50_ctxv1"}
    run_script("scripts/coop/few_shot.sh", "caltech101", "1", "1", "MODEL.BACKBONE.NAME", rn, *TINY_OVERRIDES,
               "OPTIM.MAX_EPOCH", "2", env=env)
    (result,) = out.rglob("result.json")
    assert "rn50_ep50_ctxv1" in str(result)
    run = json.loads(result.read_text())
    assert run["trainer"] == "CoOp" and run["backbone"] == rn and run["max_epoch"] == 2 and run["training_finished"]
    config = run["config"] if isinstance(run["config"], str) else json.dumps(run["config"])
    assert "random_translation" in config and "best_val" in config


@requires_dassl
def test_coop_runs_base_to_new_on_an_openclip_vit(tmp_path):
    name = save_random_openclip(str(tmp_path / "openclip"))
    state = run_base2new_scripts("coop", "CoOp", tmp_path, name, "TRAINER.COOP.N_CTX", "4")
    assert state["ctx"].shape == (4, 128)


@requires_dassl
def test_a_method_prompting_image_tokens_is_refused_on_a_resnet(tmp_path, capsys):
    rn = save_random_clip(str(tmp_path / "tiny_rn.pt"), "tiny-rn")
    data = tmp_path / "data"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=3)
    status = train_in_process([
        "--root", str(data), "--trainer", "MaPLe", "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml", "--output-dir", str(tmp_path / "out"),
        "MODEL.BACKBONE.NAME", rn, *TINY_OVERRIDES, "DATASET.NUM_SHOTS", "1",
    ])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip() == (
        "error: MaPLe prompts the image encoder's tokens, but this CLIP's image encoder is a ResNet (ModifiedResNet) "
        "(openai-resnet); use a ViT backbone, or a method whose image side is frozen: ZeroshotCLIP, CoOp, CoCoOp, "
        "KgCoOp, ProGrad, TCP."
    )
    assert "Traceback" not in err


@requires_dassl
def test_an_unusable_openclip_name_is_refused_before_any_work(tmp_path, capsys):
    data = tmp_path / "data"
    make_tiny_dataset(str(data), "Caltech101", num_classes=4, images_per_class=3)
    status = train_in_process([
        "--root", str(data), "--trainer", "CoOp", "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/CoOp/vit_b16_ep50.yaml", "--output-dir", str(tmp_path / "out"),
        "MODEL.BACKBONE.NAME", "openclip:ViT-B-16-SigLIP:webli", *TINY_OVERRIDES,
    ])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.strip() == (
        "error: open_clip ViT-B-16-SigLIP uses another tokenizer than OpenAI's BPE (timm/ViT-B-16-SigLIP); prompt "
        "learning here tokenizes with OpenAI's BPE, so only CLIP-style open_clip models (ViT-B-16, ViT-L-14, RN50, "
        "...) run."
    )
    assert not (tmp_path / "out").exists()
