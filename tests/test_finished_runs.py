"""A finished run run again (train.py --skip-finished, what the scripts pass): the same inputs are
skipped before the configuration is resolved (no torch, no Dassl), anything else falls back to the
full comparison, which skips the same run and refuses another naming the keys; the backbone is
compared by its file's content. In-process, on a tiny zero-shot evaluation (needs Dassl)."""

import json
import shutil
from pathlib import Path

import pytest

from clipprompt.backbones.random_clip import save_random_clip
from clipprompt.results import identity
from clipprompt.testing import make_tiny_dataset, protocol_scripts
from clipprompt.testing.markers import requires_dassl

pytestmark = requires_dassl

REPO = Path(__file__).resolve().parent.parent
TINY = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "8"]


def argv(root, output, config, clip, *extra, flags=("--skip-finished",)):
    return [*flags, "--eval-only", "--root", str(root), "--trainer", "ZeroshotCLIP",
            "--dataset-config-file", "configs/datasets/caltech101.yaml", "--config-file", str(config),
            "--output-dir", str(output), "--protocol", "xd", "--part", "target",
            "MODEL.BACKBONE.NAME", str(clip), *TINY, *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_clip_path):
    """One finished evaluation, its config file and CLIP copied where the tests may not change them."""
    root = tmp_path_factory.mktemp("finished")
    make_tiny_dataset(str(root / "data"), "Caltech101", num_classes=4, images_per_class=4)
    config = shutil.copy(REPO / "configs/trainers/ZeroshotCLIP/vit_b16.yaml", root / "config.yaml")
    clip = shutil.copy(tiny_clip_path, root / "clip.pt")
    assert protocol_scripts.train_in_process(argv(root / "data", root / "run", config, clip, flags=())) == 0
    return root


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run, of its config file and of its CLIP, to change."""
    shutil.copytree(finished / "run", tmp_path / "run")
    shutil.copy(finished / "config.yaml", tmp_path / "config.yaml")
    shutil.copy(finished / "clip.pt", tmp_path / "clip.pt")
    return tmp_path


@pytest.fixture
def resolved(monkeypatch):
    """Counts the commands that resolved their configuration (train.py's full comparison)."""
    import train

    calls, setup_cfg = [], train.setup_cfg
    monkeypatch.setattr(train, "setup_cfg", lambda args: calls.append(args) or setup_cfg(args))
    return calls


def again(finished, run, *extra, clip=None, config=None):
    """The finished run's command again, on the copy: its status; result.json must not change."""
    result = run / "run" / "result.json"
    before = result.read_bytes()
    status = protocol_scripts.train_in_process(argv(finished / "data", run / "run", config or run / "config.yaml",
                                                    clip or run / "clip.pt", *extra))
    assert result.read_bytes() == before
    return status


def test_result_json_records_the_digest_of_the_inputs(finished):
    import train

    record = json.loads((finished / "run" / "result.json").read_text())
    args = train.parse_args(argv(finished / "data", finished / "run", finished / "config.yaml", finished / "clip.pt",
                                 flags=()))
    assert record["inputs_digest"] == identity.inputs_digest(train.run_inputs(args))
    assert record["backbone_sha256"] == identity.backbone_sha256(str(finished / "clip.pt"))


def test_the_same_inputs_are_skipped_without_resolving_the_configuration(finished, run, resolved, capsys):
    # elsewhere, with other workers and the CLIP moved: none of it is an input of the run identity
    moved = shutil.move(run / "clip.pt", run / "moved.pt")
    assert again(finished, run, "DATALOADER.NUM_WORKERS", "1", clip=moved) == 0
    assert resolved == []
    assert (f"Skipping: {run / 'run'} already holds a finished run of this configuration (the same inputs"
            in capsys.readouterr().out)


def config_byte(run):
    with open(run / "config.yaml", "a") as f:
        f.write("# a comment: another byte, the same configuration\n")


def config_value(run):
    path = run / "config.yaml"
    path.write_text(path.read_text().replace('INTERPOLATION: "bicubic"', 'INTERPOLATION: "bilinear"'))


def a_default(run, monkeypatch, old_default=None):
    """The code's defaults changed since the run (its fingerprint differs); with `old_default`, the
    run recorded that value of OPTIM.LR, which today's default is not."""
    monkeypatch.setattr(identity, "defaults_fingerprint", lambda: "the code of a later release")
    if old_default is not None:
        path = run / "run" / "result.json"
        record = json.loads(path.read_text())
        record["identity"]["OPTIM.LR"] = old_default
        path.write_text(json.dumps(record))


@pytest.mark.parametrize("change, extra, refused", [
    (config_byte, [], None),
    (config_value, [], "INPUT.INTERPOLATION ('bicubic' -> 'bilinear')"),
    (None, ["OPTIM.LR", "0.5"], "OPTIM.LR ({lr} -> 0.5)"),
    (None, ["--tag", "v2"], "tag ('' -> 'v2')"),
    (lambda run, monkeypatch: a_default(run, monkeypatch), [], None),
    (lambda run, monkeypatch: a_default(run, monkeypatch, 0.01), [], "OPTIM.LR (0.01 -> {lr})"),
], ids=["config-byte", "config-value", "override", "tag", "default-fingerprint", "default-value"])
def test_other_inputs_fall_back_to_the_full_comparison(finished, run, resolved, change, extra, refused,
                                                       monkeypatch, capsys):
    lr = json.loads((run / "run" / "result.json").read_text())["identity"]["OPTIM.LR"]
    if change is config_byte or change is config_value:
        change(run)
    elif change is not None:
        change(run, monkeypatch)
    if extra[:1] == ["--tag"]:  # a flag: before the overrides
        status = protocol_scripts.train_in_process([*extra, *argv(finished / "data", run / "run", run / "config.yaml",
                                                                  run / "clip.pt")])
    else:
        status = again(finished, run, *extra)
    out, err = capsys.readouterr()
    assert len(resolved) == 1  # the configuration was resolved and compared
    if refused is None:
        assert status == 0 and f"Skipping: {run / 'run'} already holds a finished run of this configuration (delete" in out
    else:
        assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert err.startswith(f"error: {run / 'run'} already holds a finished run of another configuration: "
                          f"{refused.format(lr=lr)}. ")


def test_a_moved_clip_is_the_same_run_in_the_full_comparison_too(finished, run, resolved, capsys):
    config_byte(run)  # no fast answer
    moved = shutil.move(run / "clip.pt", run / "moved.pt")
    assert again(finished, run, clip=moved) == 0 and len(resolved) == 1
    assert "already holds a finished run of this configuration" in capsys.readouterr().out


def test_another_clip_file_at_the_same_path_is_another_run(finished, run, resolved, capsys):
    """The record names the CLIP file the run had; today another CLIP is at that path."""
    path = run / "run" / "result.json"
    record = json.loads(path.read_text())
    record["backbone"] = record["identity"]["MODEL.BACKBONE.NAME"] = str(run / "clip.pt")
    path.write_text(json.dumps(record))
    save_random_clip(str(run / "clip.pt"), seed=1)
    assert again(finished, run) == 2 and len(resolved) == 1
    err = capsys.readouterr().err
    old, new = record["backbone_sha256"][:12], identity.backbone_sha256(str(run / "clip.pt"))[:12]
    assert err.startswith(f"error: {run / 'run'} already holds a finished run of another configuration: "
                          f"MODEL.BACKBONE.NAME ('{run / 'clip.pt'}' -> '{run / 'clip.pt'}': another file, "
                          f"sha256 {old} -> {new}). ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
