"""The dataset catalog agrees with CoOp's names, the configs and DATASETS.md."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from clipprompt.data import CATALOG, DataConfigError, Layout, get_spec

REPO = Path(__file__).resolve().parents[1]

COOP_NAMES = {
    "ImageNet": "imagenet",
    "Caltech101": "caltech-101",
    "OxfordPets": "oxford_pets",
    "StanfordCars": "stanford_cars",
    "OxfordFlowers": "oxford_flowers",
    "Food101": "food-101",
    "FGVCAircraft": "fgvc_aircraft",
    "SUN397": "sun397",
    "DescribableTextures": "dtd",
    "EuroSAT": "eurosat",
    "UCF101": "ucf101",
    "ImageNetV2": "imagenetv2",
    "ImageNetSketch": "imagenet-sketch",
    "ImageNetA": "imagenet-adversarial",
    "ImageNetR": "imagenet-rendition",
}


def test_catalog_has_the_15_coop_datasets_in_their_folders():
    assert {name: spec.dataset_dir for name, spec in CATALOG.items()} == COOP_NAMES
    assert all(spec.name == name for name, spec in CATALOG.items())


def test_templates_follow_the_coop_convention():
    assert CATALOG["OxfordPets"].template == "a photo of a {}, a type of pet."
    assert CATALOG["DescribableTextures"].template == "{} texture."
    assert CATALOG["EuroSAT"].template == "a centered satellite photo of {}."
    assert CATALOG["UCF101"].template == "a photo of a person doing {}."
    assert CATALOG["Food101"].template == "a photo of {}, a type of food."
    for spec in CATALOG.values():
        assert spec.template.count("{}") == 1, spec.name
        assert spec.template.format("wild cat").count("wild cat") == 1


def test_split_files_exactly_where_coop_puts_them():
    json_specs = [s for s in CATALOG.values() if s.layout is Layout.SPLIT_JSON]
    assert len(json_specs) == 9
    for spec in json_specs:
        assert spec.split_file == f"split_zhou_{spec.name}.json"
        assert spec.split_source and spec.split_source.startswith("https://")
    assert CATALOG["FGVCAircraft"].split_file is None


def test_test_only_datasets_are_the_imagenet_variants():
    assert {n for n, s in CATALOG.items() if s.test_only} == {
        "ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR"
    }


def test_get_spec_unknown_name_lists_valid_names_and_suggests():
    with pytest.raises(ValueError) as info:
        get_spec("caltech101")
    message = str(info.value)
    assert "'caltech101'" in message and "Did you mean 'Caltech101'" in message
    for name in CATALOG:
        assert name in message
    assert isinstance(info.value, DataConfigError)


@pytest.mark.parametrize("spec", CATALOG.values(), ids=list(CATALOG))
def test_each_dataset_has_a_config_naming_it(spec):
    text = (REPO / "configs" / "datasets" / f"{spec.config}.yaml").read_text()
    assert re.fullmatch(rf'DATASET:\n  NAME: "{spec.name}"\n', text)


def test_datasets_md_has_a_section_per_error_anchor():
    """Errors link DATASETS.md#<name>; each must resolve to a heading naming the folder."""
    text = (REPO / "DATASETS.md").read_text()
    sections = dict(
        (m.group(1).lower(), m.group(2))
        for m in re.finditer(r"^## (\S+)\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    )
    for spec in CATALOG.values():
        anchor = spec.docs.split("#", 1)[1]
        assert anchor in sections, spec.docs
        assert f"{spec.dataset_dir}/" in sections[anchor], spec.name


def test_data_layer_imports_without_dassl():
    code = (
        "import sys, clipprompt.data, clipprompt.testing; "
        "assert not any(m == 'dassl' or m.startswith('dassl.') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
