"""Published numbers (clipprompt/results/published/) and `report --compare` per dataset, on fake trees."""

import contextlib
import csv
import io
import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest

from clipprompt.results import compare, protocols, published_numbers, report
from clipprompt.testing.markers import requires_dassl

COOP = "shots_16/CoOp/vit_b16_ep50"


# -- the published numbers ---------------------------------------------------------------------


@requires_dassl
def test_every_published_number_parses_has_a_source_and_is_consistent(monkeypatch):
    import trainers  # noqa: F401  (registers our trainers)
    from trainers._dassl import TRAINER_REGISTRY

    found = published_numbers.numbers()
    assert {n.protocol for n in found} == {"base2new", "xd", "dg", "few_shot", "cost"}
    registered = set(TRAINER_REGISTRY.registered_names())
    assert published_numbers.problems(found, registered) == []
    # the two HMs kept as printed (PromptKD's image prints them so) are the only ones the HM check skips
    monkeypatch.setattr(published_numbers, "HM_AS_PRINTED", frozenset())
    assert [p.split(": HM ")[0] for p in published_numbers.problems(found, registered)] == [
        "base2new.csv PromptKD (ViT-L/14 teacher, unlabeled) stanford_cars",
        "base2new.csv PromptKD (ViT-L/14 teacher, unlabeled) ucf101"]
    read = [n for n in found if n.status == "read"]
    assert all(n.value is not None and n.source for n in read)
    # per dataset for the 11 datasets and the average, Base/New/HM, for these methods
    b2n = published_numbers.lookup("base2new")
    for trainer in ("ZeroshotCLIP", "CoOp", "CoCoOp", "KgCoOp", "TCP", "MaPLe", "PromptSRC", "ProGrad",
                    "CoOp_DePT", "CoCoOp_DePT", "KgCoOp_DePT", "MaPLe_DePT", "PromptKD"):
        for dataset in (*protocols.BASE2NEW, "average"):
            assert all(b2n[(trainer, dataset, m)].status == "read" for m in ("base", "new", "hm")), (trainer, dataset)
    # the 11-dataset average only, for these (their per-dataset tables are named as not read)
    for trainer in ("IVLP", "VPT", "MMA", "CoPrompt", "MMRL", "HiCroPL"):
        assert all(b2n[(trainer, "average", m)].status == "read" for m in ("base", "new", "hm")), trainer
        assert published_numbers.unknown_tables("base2new")[trainer].dataset == "*"
    assert [b2n[("MMRLpp", "average", m)].status for m in ("base", "new", "hm")] == ["unknown"] * 3
    assert b2n[("CoOp", "eurosat", "hm")].value == 68.69
    xd = published_numbers.lookup("xd")
    assert xd[("MaPLe", "fgvc_aircraft", "accuracy")].value == 24.74 and xd[("TCP", "imagenet", "accuracy")].value == 71.40
    assert published_numbers.lookup("dg")[("CoCoOp", "imagenet_sketch", "accuracy")].value == 48.75
    assert published_numbers.lookup("few_shot")[("PromptSRC", "average", "shots_1")].value == 72.32
    assert (b2n[("ProGrad", "eurosat", "hm")].value, b2n[("MMRL", "average", "hm")].value,
            b2n[("HiCroPL", "average", "hm")].value, b2n[("CoCoOp_DePT", "fgvc_aircraft", "base")].value) == (72.67, 81.20, 81.75, 43.07)
    assert (xd[("CoCoOp_DePT", "average", "accuracy")].value, xd[("ProGrad", "imagenet", "accuracy")].value) == (65.88, 72.24)
    assert published_numbers.lookup("dg")[("MaPLe_DePT", "imagenet_a", "accuracy")].value == 49.70
    # PromptKD: distilled from a ViT-L/14 teacher on unlabeled images, its own protocol, and said so
    assert b2n[("PromptKD", "average", "hm")].value == 83.73
    assert {n.method for n in found if n.trainer == "PromptKD" and n.value is not None} == {"PromptKD (ViT-L/14 teacher, unlabeled)"}
    # its cross-dataset numbers are distilled on each target's images: recorded, not compared with our xd runs
    (pkd_xd,) = [n for n in found if n.protocol == "xd" and n.method.startswith("PromptKD") and n.dataset == "average"]
    assert (pkd_xd.method, pkd_xd.trainer, pkd_xd.value) == ("PromptKD (ViT-L/14 teacher, unlabeled target images)", "", 71.33)
    assert ("PromptKD", "average", "accuracy") not in xd
    # a second variant of one of our trainers (another config, someone else's run) has no trainer
    assert b2n[("IVLP", "average", "hm")].method.startswith("Independent V-L Prompting (2+2 ctx")
    others = {n.method for n in found if not n.trainer and n.value is not None}
    assert {"Independent V-L Prompting (4+4 ctx, 20 epochs)", "VPT (DePT's run)", "CoPrompt* (SkipTuning's run)"} <= others
    # what could not be read names the table to read
    assert "2405.15549" in published_numbers.unknown_tables("base2new")["SEP"].source


def test_problems_finds_a_wrong_hm_a_missing_source_and_an_unknown_trainer(tmp_path):
    (tmp_path / "base2new.csv").write_text(
        "method,trainer,dataset,metric,value,status,source\n"
        "A,CoOp,dtd,base,80.00,read,a paper\n"
        "A,CoOp,dtd,new,60.00,read,a paper\n"
        "A,CoOp,dtd,hm,70.00,read,a paper\n"
        "B,NoSuchTrainer,dtd,base,101,read,\n"
        "C,CoOp,average,hm,,read,somewhere\n"
        "D,CoOp,dtd,base,81.00,read,another paper\n")
    found = published_numbers.numbers("base2new", folder=tmp_path)
    assert published_numbers.problems(found, ["CoOp"]) == [
        "base2new.csv B dtd base: no source",
        "base2new.csv B dtd base: trainer 'NoSuchTrainer' does not exist",
        "base2new.csv B dtd base: 101.0 is out of range",
        "base2new.csv C average hm: read without a value",
        "base2new.csv D dtd base: trainer CoOp already has this number from 'A'",
        "base2new.csv A dtd: HM 70.0 is not the harmonic mean 68.571 of Base 80.0 and New 60.0",
    ]
    # an average that is not the mean of its rows (every row there)
    (tmp_path / "dg.csv").write_text("method,trainer,dataset,metric,value,status,source\n" + "".join(
        f"A,CoOp,{d},accuracy,{v},read,x\n" for d, v in zip((*protocols.DG_TARGETS, "average"), (60, 50, 40, 70, 55.1))))
    assert published_numbers.problems(published_numbers.numbers("dg", folder=tmp_path), ["CoOp"]) == [
        "dg.csv A average accuracy: 55.1 is not the mean 55.000 of its 4 rows"]
    (tmp_path / "xd.csv").write_text("method,trainer,dataset,metric,value,status,source\nA,CoOp,dtd,accuracy,7o,read,x\n")
    with pytest.raises(ValueError, match=r"xd.csv:2: value '7o' is not a number"):
        published_numbers.numbers("xd", folder=tmp_path)


def test_the_averages_read_from_their_sources():
    base2new, xd = published_numbers.lookup("base2new"), published_numbers.lookup("xd")
    assert [base2new[("CoOp", "average", m)].value for m in ("base", "new", "hm")] == [82.69, 63.22, 71.66]
    sep = [n for (trainer, _, _), n in base2new.items() if trainer == "SEP"]
    assert sep and all(n.status == "unknown" and n.value is None and "2405.15549" in n.source for n in sep)
    assert base2new[("MPL", "average", "hm")].status == "derived"
    assert (xd[("KgCoOp", "imagenet", "accuracy")].value, xd[("KgCoOp", "average", "accuracy")].value) == (70.66, 65.51)


# -- the comparison ----------------------------------------------------------------------------


def put(root, rel, accuracy):
    folder = Path(root) / rel
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps({"metrics": {"accuracy": accuracy}}))


BASE = {1: 96.0, 2: 97.0, 3: 98.0}  # CoOp caltech101 Base: 97.00 ± 1.00; published 98.00
NEW = {1: 80.0, 2: 81.0, 3: 82.0}  # New: 81.00 ± 1.00; published 89.81


@pytest.fixture
def tree(tmp_path):
    out = tmp_path / "output"
    for i, d in enumerate(protocols.BASE2NEW):
        for seed in (1, 2, 3):
            base = BASE[seed] if d == "caltech101" else 70.0 + i + seed
            new = NEW[seed] if d == "caltech101" else 60.0 + i + seed
            put(out, f"base2new/train_base/{d}/{COOP}/seed{seed}", base)
            put(out, f"base2new/test_new/{d}/{COOP}/seed{seed}", new)
        for seed in (1, 2):
            put(out, f"few_shot/{d}/shots_4/CoOp/vit_b16_ep50/seed{seed}", 70.0 + seed)
    for seed, acc in ((1, 71.0), (2, 72.0)):
        put(out, f"xd/train/imagenet/{COOP}/seed{seed}", acc)
        for i, d in enumerate(protocols.XD_TARGETS):
            put(out, f"xd/test/{d}/{COOP}/seed{seed}", 60.0 + seed)
        for d in protocols.DG_TARGETS[:3]:  # imagenet_r missing: no average of ours
            put(out, f"xd/test/{d}/{COOP}/seed{seed}", 50.0 + seed)
    put(out, "zeroshot/caltech101/base/ZeroshotCLIP/vit_b16", 96.5)
    return out


def report_output(tree, *args):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert report.main([str(tree), *args]) == 0
    return printed.getvalue()


def line(text, start):
    (found,) = [x for x in text.splitlines() if x.startswith(start)]
    return found


def test_compare_prints_per_dataset_differences_and_the_two_std_test(tree):
    text = report_output(tree, "--compare")
    assert "### Base-to-new: ours vs published, per dataset" in text
    base = line(text, "| CoOp | caltech101 | base |")
    assert base.startswith("| CoOp | caltech101 | base | 97.00 ± 1.00 (n=3) | 98.00 [") and base.endswith("] | -1.00 | yes |")
    new = line(text, "| CoOp | caltech101 | new |")
    assert "| 81.00 ± 1.00 (n=3) | 89.81 [" in new and new.endswith("] | -8.81 | no |")
    hm = statistics.fmean(2 * BASE[s] * NEW[s] / (BASE[s] + NEW[s]) for s in (1, 2, 3))
    assert f"| CoOp | caltech101 | hm | {hm:.2f} ± " in text
    # the 11-dataset average, per seed, against the published average
    avg_base = statistics.fmean(statistics.fmean(BASE.values()) if d == "caltech101" else 72.0 + i
                                for i, d in enumerate(protocols.BASE2NEW))
    assert f"| CoOp | average | base | {avg_base:.2f} ± " in text
    assert line(text, "| CoOp | average | base |").endswith(f"| {avg_base - 82.69:+.2f} | no |")
    # zero-shot CLIP: one run, no std, so no two-std test
    zs = line(text, "| ZeroshotCLIP | caltech101 | base |")
    assert zs.startswith("| ZeroshotCLIP | caltech101 | base | 96.50 (n=1) | 96.84 [") and zs.endswith("] | -0.34 | – |")
    # cross-dataset: the source and each target; domain generalization without an average of ours
    xd = text.split("### Cross-dataset transfer: ours")[1].split("###")[0]
    assert line(xd, "| CoOp | imagenet | accuracy |").endswith("] | -0.01 | yes |")
    assert "| CoOp | dtd | accuracy | 61.50 ± 0.71 (n=2) | 41.92 [" in xd
    dg = text.split("### Domain generalization: ours")[1]
    assert "| CoOp | imagenet_r | accuracy | – | 75.21 [" in dg and "| CoOp | average | accuracy | – | 59.28 [" in dg
    # few-shot: our average at 4 shots against the published one
    assert line(text, "| CoOp | average | shots_4 |").startswith("| CoOp | average | shots_4 | 71.50 ± 0.71 (n=2) | 74.02 [")
    assert "| CoOp | average | shots_4 |" in text.split("### Few-shot: ours")[1]
    # the numbered sources
    sources = text.split("Sources:\n")[1]
    assert "zhengli97/PromptKD@ec244f783c8b9b2503ad5a838a3fd97365686ddb images/exp_results.png" in sources
    assert "megvii-research/CasPL" in sources


def test_compare_csv_one_line_per_number(tree):
    rows = list(csv.DictReader(io.StringIO(report_output(tree, "--compare", "--format", "csv", "--protocol", "base2new"))))
    assert {r["protocol"] for r in rows} == {"base2new"}
    base = next(r for r in rows if (r["method"], r["dataset"], r["metric"]) == ("CoOp", "caltech101", "base"))
    assert float(base["mean"]) == 97.0 and float(base["std"]) == 1.0 and base["n_seeds"] == "3"
    assert float(base["published"]) == 98.0 and float(base["difference"]) == -1.0 and base["within_2_std"] == "yes"
    assert base["published_status"] == "read" and "PromptKD" in base["published_source"]


def test_compare_from_plain_values_tags_duplicates_and_unknown_tables():
    ours = {("SEP [lr0.1]", "base2new", "dtd", "base"): [80.0, 82.0],
            ("SEP [lr0.1]", "base2new", "dtd", "new"): [60.0, 62.0]}
    rows = compare.compare(ours, "base2new")
    assert [(r.dataset, r.metric) for r in rows] == [(d, m) for d in ("dtd", "average") for m in ("base", "new", "hm")]
    assert all(r.published is None and r.within_two_std is None for r in rows[:3])
    assert all(r.mean is None and r.published.status == "unknown" for r in rows[3:])  # SEP's table, not read
    assert rows[2].mean == pytest.approx(statistics.fmean([2 * 80 * 60 / 140, 2 * 82 * 62 / 144]))
    text = compare.markdown(ours)
    assert "| SEP [lr0.1] | average | hm | – | unknown [1] | – | – |" in text
    assert "SEP [lr0.1]: some published numbers are unknown [1]" in text and "[1] not read: SEP paper (arXiv 2405.15549)" in text
    warnings = []
    records = [SimpleNamespace(protocol="base2new", part="base", trainer="CoOp", dataset="dtd", seed=1, accuracy=a,
                               path=p, tag=None) for a, p in ((80.0, "/a"), (81.0, "/b"))]
    assert compare.from_records(records, warnings.append) == {("CoOp", "base2new", "dtd", "base"): {1: 80.0}}
    assert warnings == ["two results for CoOp base2new dtd base seed 1: /a and /b; --compare uses the first"]


def test_the_results_modules_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, clipprompt.results.compare, clipprompt.results.cost_table, clipprompt.results.published_numbers; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
