"""Frozen test-set image features computed once: exact (metrics identical with and without the cache,
for every method that uses it), shared across methods, keyed, rebuilt when they do not match."""

import json

import torch

from clipprompt.runs import feature_cache
from clipprompt.models import CoCoOp, CoOp, ZeroshotCLIP
from clipprompt.models.mpl import MPL
from clipprompt.models.sep import SEP
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import train_in_process



def test_which_methods_use_frozen_features():
    from clipprompt.models import TCP, KgCoOp, MaPLe, PromptSRC

    assert all(feature_cache.uses_frozen_features(m) for m in (ZeroshotCLIP, CoOp, CoCoOp, KgCoOp, TCP))
    # MPL inherits CoOp's logits_from_image_features but has its own forward: not trusted; nor are
    # the methods that prompt the image encoder
    assert not any(feature_cache.uses_frozen_features(m) for m in (MPL, SEP, MaPLe, PromptSRC))


def test_forward_is_the_logits_of_the_encoder_output(tiny_clip):
    images = torch.randn(3, 3, 32, 32)
    for model in (ZeroshotCLIP(tiny_clip, ["cat", "dog"]), CoOp(tiny_clip, ["cat", "dog"]), CoCoOp(tiny_clip, ["cat", "dog"])):
        with torch.no_grad():
            assert torch.equal(model(images), model.logits_from_image_features(model.image_encoder(images)))


def test_a_cache_is_used_only_under_its_exact_key(tmp_path):
    key = dict(backbone="abc", dataset="DescribableTextures", split="test", precision="fp32")
    cache = feature_cache.FeatureCache(tmp_path, key)
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 1])

    features, labels, hit = cache.get(compute)
    assert not hit and calls == [1] and cache.path.is_file()
    features2, labels2, hit = feature_cache.FeatureCache(tmp_path, dict(key)).get(compute)
    assert hit and calls == [1] and torch.equal(features2, features) and torch.equal(labels2, labels)
    other = feature_cache.FeatureCache(tmp_path, {**key, "precision": "fp16"})
    assert other.path != cache.path and not other.get(compute)[2]
    # a file under the right name but another key (or torn) is rebuilt, never trusted
    torch.save({"key": json.dumps({"version": 1, "x": 1}), "features": torch.zeros(3, 2), "labels": labels},
               cache.path)
    assert cache.load() is None and not cache.get(compute)[2]
    cache.path.write_bytes(cache.path.read_bytes()[:40])
    assert cache.load() is None and not cache.get(compute)[2] and cache.load() is not None


def test_file_digest_follows_the_content(tmp_path):
    path = tmp_path / "clip.pt"
    path.write_bytes(b"weights one")
    first = feature_cache.file_digest(path)
    path.write_bytes(b"weights two!")
    assert feature_cache.file_digest(path) != first


@requires_dassl
def test_metrics_identical_with_and_without_the_cache_for_each_method(tmp_path, tiny_clip_path, capsys):
    from clipprompt.testing import make_tiny_dataset

    data = str(tmp_path / "data")
    make_tiny_dataset(data, "Caltech101", num_classes=6, images_per_class=6)
    cache_dir = tmp_path / "features"
    on = ["MODEL.FEATURE_CACHE_DIR", str(cache_dir)]

    def run(trainer, config, out, *extra, flags=()):
        args = [*flags, "--root", data, "--trainer", trainer, "--seed", "1",
                "--dataset-config-file", "configs/datasets/caltech101.yaml",
                "--config-file", f"configs/trainers/{config}.yaml", "--output-dir", str(tmp_path / out),
                "MODEL.BACKBONE.NAME", tiny_clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
                "DATALOADER.TEST.BATCH_SIZE", "8", *extra]
        status = train_in_process(args)
        out, err = capsys.readouterr()
        assert status == 0, out[-3000:] + err[-3000:]
        return out

    def metrics(out):
        return json.loads((tmp_path / out / "result.json").read_text())["metrics"]

    run("ZeroshotCLIP", "ZeroshotCLIP/vit_b16", "zs_plain", flags=["--eval-only", "--no-feature-cache"])
    log = run("ZeroshotCLIP", "ZeroshotCLIP/vit_b16", "zs_cached", *on, flags=["--eval-only"])
    assert "Frozen image features written to" in log and len(list(cache_dir.glob("*.pt"))) == 1
    assert metrics("zs_cached") == metrics("zs_plain")

    for trainer, config in (("CoOp", "CoOp/vit_b16_ep50"), ("CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1")):
        train = ["OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "1"]
        run(trainer, config, f"{trainer}_train", *train, flags=["--no-feature-cache"])
        log = run(trainer, config, f"{trainer}_eval", *on, "DATASET.NUM_SHOTS", "1",
                  flags=["--eval-only", "--model-dir", str(tmp_path / f"{trainer}_train")])
        assert "Frozen image features read from" in log  # ZeroshotCLIP's: same backbone, images, transform
        assert metrics(f"{trainer}_eval") == metrics(f"{trainer}_train")
    assert len(list(cache_dir.glob("*.pt"))) == 1
