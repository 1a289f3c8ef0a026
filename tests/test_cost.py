"""Costs in result.json (a real tiny run, interrupted and resumed) and `report --cost` on a fake tree."""

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from clipprompt.results import cost_table, report
from clipprompt.testing import make_tiny_dataset
from clipprompt.testing.markers import requires_dassl
from clipprompt.testing.protocol_scripts import train_in_process

REPO = Path(__file__).resolve().parent.parent
SHOTS, CLASSES, EPOCHS = 2, 4, 2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_tiny_dataset(str(root), "Caltech101", num_classes=CLASSES, images_per_class=8)
    return str(root)


def argv(data_root, out, clip_path, *extra, flags=()):
    return [
        *flags, "--root", data_root, "--trainer", "CoOp", "--seed", "1",
        "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/CoOp/vit_b16_ep50.yaml", "--output-dir", str(out),
        "MODEL.BACKBONE.NAME", clip_path, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "2", "DATALOADER.TEST.BATCH_SIZE", "8",
        "DATASET.NUM_SHOTS", str(SHOTS), "OPTIM.MAX_EPOCH", str(EPOCHS), *extra,
    ]


def cost_of(out):
    return json.loads((Path(out) / "result.json").read_text())["cost"]


def trained_parameters(out):
    import torch

    state = torch.load(Path(out) / "model" / f"model.pth.tar-{EPOCHS}", weights_only=True)["state_dict"]
    return sum(t.numel() for t in state.values())


@requires_dassl
def test_a_run_records_its_cost_and_a_resumed_run_carries_it(data_root, tiny_clip_path, tmp_path, capsys):
    import torch

    out = tmp_path / "straight"
    assert train_in_process(argv(data_root, out, tiny_clip_path)) == 0
    cost = cost_of(out)
    images = EPOCHS * SHOTS * CLASSES
    assert cost["train_images"] == images and cost["train_segments"] == 1
    assert 0 < cost["train_seconds"] < 600 and 0 < cost["eval_seconds"] < 600
    assert cost["train_images_per_second"] == pytest.approx(images / cost["train_seconds"])
    assert cost["trainable_parameters"] == trained_parameters(out) > 0  # CoOp: its context vectors
    assert 10 < cost["peak_rss_mib"] < 1_000_000  # this process's, in MiB
    if torch.cuda.is_available():
        assert cost["peak_gpu_memory_mib"] > 0
    else:
        assert cost["peak_gpu_memory_mib"] is None

    # stopped by SIGTERM after epoch 1, step 2; the same command resumes: both segments are counted
    resumed = tmp_path / "resumed"
    os.environ["CLIPPROMPT_FAULT"] = "sigterm@1.2"
    try:
        assert train_in_process(argv(data_root, resumed, tiny_clip_path)) == 1
    finally:
        os.environ.pop("CLIPPROMPT_FAULT")
    assert not (resumed / "result.json").exists()
    assert train_in_process(argv(data_root, resumed, tiny_clip_path)) == 0
    cost = cost_of(resumed)
    assert cost["train_segments"] == 2 and cost["train_images"] == images
    assert 0 < cost["train_seconds"] < 600

    # an evaluation-only run trained nothing
    evaluated = tmp_path / "evaluated"
    assert train_in_process(argv(data_root, evaluated, tiny_clip_path,
                                 flags=["--eval-only", "--model-dir", str(out), "--load-epoch", str(EPOCHS)])) == 0
    cost = cost_of(evaluated)
    assert cost["train_seconds"] is None and cost["train_images"] is None and cost["train_segments"] == 0
    assert cost["eval_seconds"] > 0 and cost["trainable_parameters"] == trained_parameters(out)
    capsys.readouterr()


def put(root, rel, cost, **run):
    folder = Path(root) / rel
    folder.mkdir(parents=True, exist_ok=True)
    result = {"metrics": {"accuracy": 50.0}, **run}
    if cost is not None:
        result["cost"] = cost
    (folder / "result.json").write_text(json.dumps(result))


def cost(train, images_per_second, rss, gpu=None, params=2048, eval_s=5.0):
    return {"train_seconds": train, "eval_seconds": eval_s, "train_images_per_second": images_per_second,
            "peak_gpu_memory_mib": gpu, "peak_rss_mib": rss, "trainable_parameters": params}


@pytest.fixture
def tree(tmp_path):
    out = tmp_path / "output"
    put(out, "base2new/train_base/dtd/shots_16/CoOp/vit_b16_ep50/seed1", cost(100.0, 10.0, 1000.0, gpu=3000.0))
    put(out, "base2new/train_base/dtd/shots_16/CoOp/vit_b16_ep50/seed2", cost(120.0, 12.0, 1100.0, gpu=3200.0))
    put(out, "base2new/test_new/dtd/shots_16/CoOp/vit_b16_ep50/seed1", cost(None, None, 900.0, eval_s=7.0))
    put(out, "base2new/train_base/dtd/shots_16/SEP/vit_b16_ep50_batch32/seed1", cost(300.0, 4.0, 2000.0, params=5_000_000))
    put(out, "base2new/train_base/sun397/shots_16/SEP/vit_b16_ep10_batch128/seed1", None)  # written before costs
    put(out, "elsewhere/run", cost(50.0, 20.0, 500.0), trainer="KgCoOp")  # plain train.py, no protocol
    return out


def report_main(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = report.main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


def test_cost_table_per_method_and_protocol(tree):
    status, text, _ = report_main(tree, "--cost")
    assert status == 0
    assert "| protocol | method | runs | train s | eval s | train img/s | peak GPU MiB | peak RSS MiB | trainable params |" in text
    assert ("| base2new | CoOp | 3 | 110.0 (2 of 3 runs) | 5.7 | 11.0 (2 of 3 runs) | 3100.0 (2 of 3 runs) "
            "| 1000.0 | 2,048 |") in text
    assert "| base2new | SEP | 2 | 300.0 (1 of 2 runs) | 5.0 (1 of 2 runs) | 4.0 (1 of 2 runs) | – " in text
    assert "| 5,000,000 (1 of 2 runs) |" in text
    assert "| – | KgCoOp | 1 | 50.0 | 5.0 | 20.0 | – | 500.0 | 2,048 |" in text
    status, text, err = report_main(tree, "--cost", "--protocol", "xd")
    assert (status, text, err) == (1, "", f"No result.json of protocol xd under {tree}\n")


def test_cost_csv_and_an_unreadable_result(tree):
    (tree / "broken").mkdir()
    (tree / "broken" / "result.json").write_text("{")
    status, text, err = report_main(tree, "--cost", "--format", "csv", "--protocol", "base2new")
    assert status == 0 and "warning: unreadable" in err and "broken" in err
    lines = text.splitlines()
    assert lines[0].startswith("protocol,method,runs,train_seconds,train_seconds_runs,eval_seconds,")
    assert lines[1].startswith("base2new,CoOp,3,110.0,2,")
    groups = cost_table.collect(tree, "base2new")
    assert sorted(groups) == [("base2new", "CoOp"), ("base2new", "SEP")]
