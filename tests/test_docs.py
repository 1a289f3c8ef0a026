"""The project documents itself: docs/ pages exist, README links them, every key is documented."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = {"SEP": "sep.md", "MPL": "mpl.md", "COOP": "coop.md", "COCOOP": "cocoop.md", "DEPT": "dept.md",
         "MMRL": "mmrl.md", "MMRLPP": "mmrlpp.md", "COPROMPT": "coprompt.md", "HICROPL": "hicropl.md", "PROMPTKD": "promptkd.md", "ZEROSHOTCLIP": "zeroshot.md"}


def test_readme_links_every_docs_page_and_the_links_resolve():
    links = set(re.findall(r"\]\((docs/[^)#]+)", README))
    expected = {f"docs/{p}" for p in (*PAGES.values(), "index.md", "protocols.md", "adding-a-trainer.md")}
    assert expected <= links
    for path in links:
        assert (ROOT / path).is_file(), path
    for page in (ROOT / "docs").glob("*.md"):  # links between the pages resolve too
        for target in re.findall(r"\]\(([^)#:]+\.md)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).is_file(), f"{page.name} -> {target}"


@pytest.mark.parametrize("node", sorted(PAGES))
def test_every_readme_key_of_a_method_is_on_its_page(node):
    keys = set(re.findall(rf"`TRAINER\.{node}\.([A-Z_.]+)`", README))
    page = (ROOT / "docs" / PAGES[node]).read_text(encoding="utf-8")
    if node != "ZEROSHOTCLIP":
        assert keys, f"README has no key table for TRAINER.{node}"
    missing = [k for k in keys if k != "PREC" and k not in page]
    assert not missing, f"docs/{PAGES[node]} does not mention {missing}"


def test_sep_page_says_what_official_compat_changes():
    page = (ROOT / "docs" / "sep.md").read_text(encoding="utf-8")
    section = page.split("## What `OFFICIAL_COMPAT True` changes")[1]
    assert "across the **samples**" in section and "batch" in section


# This test names the pattern; CI installs Dassl from the pinned source that CI machines have beside
# the checkout (the one place that may name it).
ALLOWED_OUTSIDE = ("tests/test_docs.py", ".ci/dassl_setup.sh")


def test_nothing_refers_to_files_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    offenders = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in (".png", ".jpg", ".pt") or name in ALLOWED_OUTSIDE:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if re.search(r"\bshared/|steering", text):
            offenders.append(name)
    assert not offenders


def test_readme_names_the_comparison_scripts_that_exist_and_the_docs_say_where_prototypes_live():
    """README's claim about bench/compare/ names real scripts, each method's page describes its own;
    docs/sep.md puts SEP's prototypes where trainers/sep.py saves them (the checkpoint's training part)."""
    claim = README.split("each checked against their authors' code by a script in `bench/compare/` (")[1].split(";")[0]
    scripts = re.findall(r"`(\w+)\.py`", claim)
    assert {"coop", "kgcoop", "maple", "promptsrc", "tcp"} <= set(scripts)
    for name in scripts:
        assert (ROOT / "bench" / "compare" / f"{name}.py").is_file()
        assert f"bench/compare/{name}.py" in (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")
    sep_page = (ROOT / "docs" / "sep.md").read_text(encoding="utf-8")
    assert "prototypes.pth" not in sep_page and "the `training` entry of `model/model.pth.tar-<epoch>`" in sep_page
    assert '"training": self.training_extras()' in (ROOT / "trainers" / "base.py").read_text(encoding="utf-8")
