"""Typed method options: one default per key, in the options class, README's tables and the config files."""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import clipprompt.models  # noqa: F401  (registers every method's options)
from clipprompt.backbones._clip import clip
from clipprompt.errors import ConfigError
from clipprompt.models import IVLP, MMA, MMRL, MMRLpp, MMRLppOptions, CoPrompt, HiCroPL, TCP, VPT, ProGrad, CoCoOp, CoOp, KgCoOp, MaPLe, MPL, PromptKD, PromptSRC, SEP, ZeroshotCLIP
from clipprompt.models.hicropl import HiCroPLOptions
from clipprompt.models.promptkd import PromptKDOptions
from clipprompt.models.cocoop import CoCoOpOptions
from clipprompt.models.ivlp import IVLPOptions
from clipprompt.models.mma import MMAOptions
from clipprompt.models.maple import MaPLeOptions
from clipprompt.models.mmrl import MMRLOptions
from clipprompt.models.coprompt import CoPromptOptions
from clipprompt.models.vpt import VPTOptions
from clipprompt.models.mpl import MPLOptions
from clipprompt.models.promptsrc import PromptSRCOptions
from clipprompt.models.sep import SEPOptions
from clipprompt.models.tcp import TCPOptions
from clipprompt.options import OPTIONS, MethodOptions, option, register_options
from clipprompt.testing.markers import requires_dassl

REPO = Path(__file__).resolve().parent.parent
CLASSES = ["dog", "cat", "fire truck"]
ROW = re.compile(r"^\| `(TRAINER\.[A-Z_]+\.[A-Z_.]+)` \| (.*?) \| .* \|$")


def readme_defaults() -> dict[str, str]:
    """`TRAINER.<NAME>.<KEY>` -> default cell of README's key tables."""
    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        match = ROW.match(line)
        if match and "<NAME>" not in match.group(1):
            rows[match.group(1)] = match.group(2)
    return rows


def parse_cell(cell: str):
    """A README default cell as a value: `""`, `"a photo of a"`, `mlp`, 16, 1e-3, False, `None`."""
    cell = cell.strip().strip("`")
    try:
        return ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        return cell  # a bare word such as mlp


def every_key():
    return [(name, key, default) for name, cls in sorted(OPTIONS.items()) for key, default, _ in cls.describe()]


def test_readme_tables_state_the_options_defaults():
    rows = readme_defaults()
    documented = {key for _, key, _ in every_key()}
    assert set(rows) <= documented, f"README rows for keys that do not exist: {sorted(set(rows) - documented)}"
    for name, key, default in every_key():
        if key.endswith(".PREC") and key not in rows:
            continue  # documented once, as TRAINER.<NAME>.PREC
        assert key in rows, f"README has no row for {key}"
        assert parse_cell(rows[key]) == default, f"README says {key} defaults to {rows[key]}, the options {default!r}"


def test_parse_cell_reads_each_kind_of_default():
    assert [parse_cell(c) for c in ['`""`', '`"a photo of a"`', "`mlp`", "16", "1e-3", "False", "`None`"]] == [
        "", "a photo of a", "mlp", 16, 1e-3, False, None]


CONFIGS = sorted((REPO / "configs" / "trainers").glob("*/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_files_use_existing_keys_and_say_where_they_differ_from_the_default(path):
    """Every TRAINER key exists and validates; a value other than the default carries a comment."""
    text = path.read_text()
    trainer = yaml.safe_load(text)["TRAINER"]
    names = [path.parent.name.upper().removesuffix("_DEPT")]  # DePT's configs also hold TRAINER.DEPT
    assert set(trainer) == {*names, *(["DEPT"] if path.parent.name.endswith("_DePT") else [])}, path
    commented = {}
    for line in text.split("\nTRAINER:")[1].splitlines():
        match = re.match(r"\s+([A-Z_]+):(.*)", line)
        if match:
            commented.setdefault(match.group(1), "#" in match.group(2))
    for name, values in trainer.items():
        cls = OPTIONS[name]
        node = cls.to_node()
        node.merge_from_other_cfg(node.__class__(values))  # raises on a key the options do not have
        options = cls.from_node(node)
        defaults = dict((key, default) for key, default, _ in cls.describe())
        for key, default, _ in options.describe():
            value = node
            for part in key.split(".")[2:]:
                value = value[part]
            leaf = key.split(".")[-1]
            if value != defaults[key]:
                assert commented.get(leaf), f"{path.name}: {key} {value!r} differs from the default {default!r} without a comment"


@requires_dassl
def test_config_files_merge_into_the_full_config():
    from clipprompt.config import add_project_config, merge_from_file
    from trainers._dassl import get_cfg_default

    for path in CONFIGS:
        merge_from_file(add_project_config(get_cfg_default()), str(path))  # ConfigError on an unknown key


# ---- the options objects --------------------------------------------------------------------


def test_one_default_per_key_the_models_take_the_options(tiny_clip):
    assert CoCoOpOptions().n_ctx == 16 and CoCoOpOptions().ctx_init == ""  # CoOp's; the config sets the paper's 4
    model = CoCoOp(tiny_clip, CLASSES)
    assert model.ctx.shape[0] == 16 and model.options == CoCoOpOptions()
    assert MPL(tiny_clip, CLASSES).ctx.shape[0] == 4  # MPL's default: "a photo of a"


@pytest.mark.parametrize("cls, changes, message", [
    (SEPOptions, {"layers": [1, 1]}, "TRAINER.SEP.LAYERS lists block 1 more than once"),
    (SEPOptions, {"template": "a photo"}, "TRAINER.SEP.TEMPLATE 'a photo' has no '{}'"),
    (SEPOptions, {"visual_selection": "pixel"}, "TRAINER.SEP.VISUAL_SELECTION is 'pixel'; use one of \"\", image, batch"),
    (SEPOptions, {"w": -1.0}, "TRAINER.SEP.W is -1.0; it must be >= 0"),
    (SEPOptions, {"adam_eps": 0}, "TRAINER.SEP.ADAM_EPS is 0.0; it must be > 0"),
    (CoCoOpOptions, {"text_chunk": -1}, "TRAINER.COCOOP.TEXT_CHUNK is -1; it must be >= 0"),
    (MPLOptions, {"prec": "fp8"}, "TRAINER.MPL.PREC is 'fp8'; use one of fp32, fp16, amp, bf16"),
])
def test_validation_is_the_options_own(cls, changes, message):
    options = cls(**changes)
    with pytest.raises(ConfigError) as info:
        options.validate()
    assert message in str(info.value)


def test_sep_options_resolve_layers_and_selection():
    options = SEPOptions(layers=2)
    options.validate()
    assert options.layers == [2] and options.selection == "image"
    assert SEPOptions(official_compat=True).selection == "batch"
    assert SEPOptions(official_compat=True, visual_selection="image").selection == "image"


def test_an_options_subclass_is_a_new_node():
    @register_options("TESTOPTS")
    @dataclass
    class TestOptions(MethodOptions):
        alpha: float = option(0.5, "a weight", above=0)

    try:
        assert OPTIONS["TESTOPTS"] is TestOptions
        assert dict(TestOptions.to_node()) == {"PREC": "fp16", "ALPHA": 0.5}
    finally:
        del OPTIONS["TESTOPTS"]


def test_unreadable_config_file_and_odd_overrides_are_one_line(tmp_path):
    from yacs.config import CfgNode

    from clipprompt.config import merge_from_list, read_config_file

    path = tmp_path / "latin1.yaml"
    path.write_bytes("OPTIM:\n  NAME: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        read_config_file(str(path))
    assert str(info.value).startswith(f"Cannot read config file {path}: 'utf-8' codec can't decode byte 0xe9")
    with pytest.raises(ConfigError) as info:
        merge_from_list(CfgNode({"OPTIM": CfgNode({"LR": 0.1})}), ["OPTIM.LR", "0.2", "OPTIM.MAX_EPOCH"])
    assert str(info.value) == "Config overrides come in KEY VALUE pairs; got an odd number: OPTIM.LR 0.2 OPTIM.MAX_EPOCH"
    assert "\n" not in str(info.value)


# ---- one logits path --------------------------------------------------------------------------


def build_each(clip):
    torch.manual_seed(0)
    return {
        "ZeroshotCLIP": ZeroshotCLIP(clip, CLASSES),
        "CoOp": CoOp(clip, CLASSES),
        "CoCoOp": CoCoOp(clip, CLASSES),
        "SEP": SEP(clip, CLASSES),
        "MPL": MPL(clip, CLASSES),
        "KgCoOp": KgCoOp(clip, CLASSES),
        "TCP": TCP(clip, CLASSES, TCPOptions(layer=1)),  # the tiny CLIP has 3 blocks
        "ProGrad": ProGrad(clip, CLASSES),
        "VPT": VPT(clip, CLASSES, VPTOptions(prompt_depth_vision=3)),
        "IVLP": IVLP(clip, CLASSES, IVLPOptions(prompt_depth_text=3, prompt_depth_vision=3)),
        "MaPLe": MaPLe(clip, CLASSES, MaPLeOptions(prompt_depth=3)),
        "PromptSRC": PromptSRC(clip, CLASSES, PromptSRCOptions(prompt_depth_text=3, prompt_depth_vision=3)),
        "MMA": MMA(clip, CLASSES, MMAOptions(adapter_start=2, adapter_end=3)),
        "MMRL": MMRL(clip, CLASSES, MMRLOptions(rep_layers=[2, 3])),
        "MMRLpp": MMRLpp(clip, CLASSES, MMRLppOptions(rep_layers=[2, 3])),
        "CoPrompt": CoPrompt(clip, CLASSES, CoPromptOptions(prompt_depth=3), [[f"a {c}.", f"one {c}."] for c in CLASSES]),
        "HiCroPL": HiCroPL(clip, CLASSES, HiCroPLOptions(prompt_depth=3, cross_layer=2)),
        "PromptKD": PromptKD(clip, CLASSES, PromptKDOptions(teacher_checkpoint="t", prompt_depth_vision=3),
                             PromptSRC(clip, CLASSES, PromptSRCOptions(prompt_depth_text=3, prompt_depth_vision=3))),
    }


def test_logits_are_fp32_under_bf16_autocast_for_every_method(tiny_clip, images):
    for name, model in build_each(tiny_clip).items():
        model.eval()
        with torch.no_grad():
            full = model(images)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                reduced = model(images)
        assert full.dtype == torch.float32 and reduced.dtype == torch.float32, name
        assert (reduced - full).abs().max() < 0.1 * full.abs().max(), name


def test_logits_are_scaled_cosines(tiny_clip):
    model = CoOp(tiny_clip, CLASSES)
    dim = tiny_clip.text_projection.shape[1]
    image, text = F.normalize(torch.randn(2, dim), dim=-1), F.normalize(torch.randn(3, dim), dim=-1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model.logits(image, text)
        per_image = model.logits(image, text.expand(2, 3, dim))  # one text set per image
    expected = model.logit_scale * torch.nn.functional.cosine_similarity(image[:, None], text[None], dim=-1)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(per_image, expected, rtol=1e-5, atol=1e-4)


def test_exact_path_gives_clips_own_logits_bit_for_bit(tiny_clip, images):
    """Zero-shot on the exact path (77-token prompts, CLIP's attention) is CLIP's forward, to the bit:
    features normalized once, then `(logit_scale * image) @ text.T` as CLIP computes it."""
    model = ZeroshotCLIP(tiny_clip, CLASSES)
    model.configure(eos_cut=False, fused=False)
    tokens = clip.tokenize([f"a photo of a {name}." for name in CLASSES])
    with torch.no_grad():
        assert torch.equal(model.eval()(images), tiny_clip(images, tokens)[0])
