"""Frozen test-set image features computed once: exact (metrics identical with and without the cache,
for every method that uses it), shared across methods, keyed, rebuilt when they do not match."""

import json
from pathlib import Path

import pytest
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
        return torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 1]), []

    features, labels, _, how = cache.get(compute)
    assert how == "written" and calls == [1] and cache.path.is_file()
    features2, labels2, _, how = feature_cache.FeatureCache(tmp_path, dict(key)).get(compute)
    assert how == "read" and calls == [1] and torch.equal(features2, features) and torch.equal(labels2, labels)
    other = feature_cache.FeatureCache(tmp_path, {**key, "precision": "fp16"})
    assert other.path != cache.path and other.get(compute)[-1] == "written"
    # a file under the right name but another key (or torn) is rebuilt, never trusted
    stored = torch.load(cache.path, weights_only=True)
    torch.save({**stored, "key": json.dumps({"version": 1, "x": 1})}, cache.path)
    assert cache.load() is None and cache.get(compute)[-1] == "written"
    cache.path.write_bytes(cache.path.read_bytes()[:40])
    lines = []
    assert cache.load(lines.append) is None and cache.get(compute)[-1] == "written" and cache.load() is not None
    assert lines == [f"Frozen image features in {cache.path} cannot be read (RuntimeError): computing them anew"]


def test_a_damaged_file_that_still_loads_is_rebuilt(tmp_path):
    cache = feature_cache.FeatureCache(tmp_path, dict(backbone="abc"))
    features, labels = torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 1])
    cache.save(features, labels)
    stored = torch.load(cache.path, weights_only=True)
    torch.save({**stored, "features": stored["features"] + 1}, cache.path)  # same key, other values
    lines = []
    assert cache.load(lines.append) is None
    assert lines == [f"Frozen image features in {cache.path} do not match their checksum (a damaged file): "
                     "computing them anew"]
    got, _, _, how = cache.get(lambda: (features, labels, []), report=lines.append)
    assert how == "written" and torch.equal(got, features) and torch.equal(cache.load()[0], features)
    # a byte flipped inside the stored tensor data: the file still loads, the checksum does not match
    raw = bytearray(cache.path.read_bytes())
    at = bytes(raw).index(features.numpy().tobytes())
    raw[at + 1] ^= 0xFF
    cache.path.write_bytes(bytes(raw))
    assert torch.load(cache.path, weights_only=True)["features"].shape == (3, 2)  # it loads
    assert cache.load(lines.append) is None and "do not match their checksum" in lines[-1]


def test_a_cache_that_cannot_be_written_costs_nothing_but_a_line(tmp_path, monkeypatch):
    import errno

    features, labels = torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 1])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = feature_cache.FeatureCache(blocker, dict(backbone="abc"))  # a file where the folder should be
    lines = []
    got, got_labels, _, how = cache.get(lambda: (features, labels, []), report=lines.append)
    assert how == "not cached" and torch.equal(got, features) and torch.equal(got_labels, labels)
    assert lines == [f"Frozen image features not cached: cannot write {cache.path} (File exists); "
                     "evaluating without the cache"]

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(feature_cache, "atomic_write", full)
    cache = feature_cache.FeatureCache(tmp_path / "features", dict(backbone="abc"))
    assert cache.get(lambda: (features, labels, []), report=lines.append)[-1] == "not cached"
    assert lines[-1] == (f"Frozen image features not cached: cannot write {cache.path} (No space left on device); "
                         "evaluating without the cache")


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


# ---- fault injection: a cache that cannot be used never costs the result ----------------------------


@pytest.fixture(scope="module")
def cache_data(tmp_path_factory):
    from clipprompt.testing import make_tiny_dataset

    root = tmp_path_factory.mktemp("cache-data")
    make_tiny_dataset(str(root), "Caltech101", num_classes=4, images_per_class=6)
    return root


def cache_run(data, out, clip_path, capsys, *extra, trainer="ZeroshotCLIP", flags=("--eval-only",)):
    """train.py with the feature cache as `extra` sets it: (status, stdout + stderr, result.json)."""
    config = {"ZeroshotCLIP": "ZeroshotCLIP/vit_b16", "CoOp": "CoOp/vit_b16_ep50"}[trainer]
    argv = [*flags, "--root", str(data), "--trainer", trainer, "--seed", "1",
            "--dataset-config-file", "configs/datasets/caltech101.yaml",
            "--config-file", f"configs/trainers/{config}.yaml", "--output-dir", str(out),
            "MODEL.BACKBONE.NAME", clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
            "DATALOADER.TEST.BATCH_SIZE", "5", "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "1", *extra]
    status = train_in_process(argv)
    stdout, stderr = capsys.readouterr()
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").is_file() else None
    return status, stdout + stderr, result


def flip_a_feature_byte(path):
    """Alter one value inside the stored features: the file still loads, with other numbers."""
    stored = torch.load(path, weights_only=True)
    raw = bytearray(path.read_bytes())
    at = bytes(raw).index(stored["features"].numpy().tobytes()[:64])
    raw[at + 3] ^= 0x40
    path.write_bytes(bytes(raw))
    assert not torch.equal(torch.load(path, weights_only=True)["features"], stored["features"])


@requires_dassl
@pytest.mark.parametrize("fault", ["read-only home", "unwritable", "full", "a file in its place", "damaged", "torn"])
def test_a_faulty_cache_ends_with_the_uncached_result(cache_data, tiny_clip_path, tmp_path, capsys, monkeypatch,
                                                      fault):
    import errno
    import tempfile

    status, _, plain = cache_run(cache_data, tmp_path / "plain", tiny_clip_path, capsys, flags=["--eval-only",
                                                                                                 "--no-feature-cache"])
    assert status == 0
    folder = tmp_path / "features"
    on = ["MODEL.FEATURE_CACHE_DIR", str(folder)]
    real_mkstemp, real_atomic_write = tempfile.mkstemp, feature_cache.atomic_write
    if fault == "read-only home":  # no cache folder configured: ~/.cache under a read-only HOME
        home = tmp_path / "home"
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.delenv(feature_cache.ENV)
        folder, on = home / ".cache" / "clipprompt" / "features", []

        real_mkdir = Path.mkdir

        def read_only(self, *args, **kwargs):
            if str(self).startswith(str(home)):
                raise OSError(errno.EROFS, "Read-only file system", str(home / ".cache"))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", read_only)
        reason = "Read-only file system"
    elif fault == "unwritable":
        def unwritable(*args, dir=None, **kwargs):
            if str(dir).startswith(str(folder)):
                raise PermissionError(errno.EACCES, "Permission denied", str(dir))
            return real_mkstemp(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", unwritable)
        reason = "Permission denied"
    elif fault == "full":  # the writer fills the disk half-way through the file
        def fill_up(path, write):
            def partial(tmp):
                Path(tmp).write_bytes(b"x" * 100)
                raise OSError(errno.ENOSPC, "No space left on device", tmp)

            real_atomic_write(path, partial)

        monkeypatch.setattr(feature_cache, "atomic_write", fill_up)
        reason = "No space left on device"
    elif fault == "a file in its place":
        folder.write_text("not a folder")
        reason = "File exists"
    else:  # a cache file written by a first run, then damaged
        status, _, first = cache_run(cache_data, tmp_path / "first", tiny_clip_path, capsys, *on)
        assert status == 0 and first["metrics"] == plain["metrics"]
        (path,) = folder.glob("*.pt")
        if fault == "damaged":
            flip_a_feature_byte(path)
        else:
            path.write_bytes(path.read_bytes()[:300])
    status, output, result = cache_run(cache_data, tmp_path / "cached", tiny_clip_path, capsys, *on)
    assert status == 0 and "Traceback" not in output, output[-3000:]
    assert result["metrics"] == plain["metrics"]
    lines = [line for line in output.splitlines() if line.startswith("Frozen image features")]
    if fault in ("damaged", "torn"):
        (path,) = folder.glob("*.pt")
        why = "do not match their checksum (a damaged file)" if fault == "damaged" else "cannot be read (RuntimeError)"
        assert lines == [f"Frozen image features in {path} {why}: computing them anew",
                         f"Frozen image features written to {path}"]
        status, output, again = cache_run(cache_data, tmp_path / "again", tiny_clip_path, capsys, *on)
        assert status == 0 and f"Frozen image features read from {path}" in output
        assert again["metrics"] == plain["metrics"]
    else:
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"Frozen image features not cached: cannot write {folder}")
        assert lines[0].endswith(f" ({reason}); evaluating without the cache")
        assert lines[0] in (tmp_path / "cached" / "log.txt").read_text()
        assert not [p for p in (folder.glob("*") if folder.is_dir() else [])]  # no temporary file left


@requires_dassl
def test_training_then_an_unusable_cache_still_writes_the_result(cache_data, tiny_clip_path, tmp_path, capsys):
    """The reported case: CoOp trains, then its evaluation met a cache path that is a file."""
    blocker = tmp_path / "features"
    blocker.write_text("not a folder")
    argv = dict(trainer="CoOp", flags=())
    status, _, plain = cache_run(cache_data, tmp_path / "plain", tiny_clip_path, capsys, "MODEL.FEATURE_CACHE", "False",
                                 **argv)
    assert status == 0
    status, output, result = cache_run(cache_data, tmp_path / "cached", tiny_clip_path, capsys,
                                       "MODEL.FEATURE_CACHE_DIR", str(blocker), **argv)
    assert status == 0 and "Traceback" not in output, output[-3000:]
    assert "Frozen image features not cached: cannot write" in output
    assert result["metrics"] == plain["metrics"] and result["training_finished"] is True
