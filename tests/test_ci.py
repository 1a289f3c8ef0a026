"""CI runs exactly README's install and test blocks (read from README at run time)."""
from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
helper = runpy.run_path(str(ROOT / ".ci" / "readme_commands.py"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_reads_install_and_test_lines_from_readme():
    install = helper["commands"](README, "install")
    assert install == ["pip install torch==2.14.1 torchvision==0.29.1", 'pip install -e ".[test]"']
    assert helper["commands"](README, "test") == ["python3 -m pytest -q -n auto"]
    ci = (ROOT / ".ci" / "run").read_text()
    # .ci/run has no install or test line of its own: both come from README.
    assert "readme_commands.py install" in ci and "readme_commands.py test" in ci
    assert not re.search(r"^\s*(python3? -m )?pip ", ci, re.MULTILINE)
    assert "pytest" not in ci.replace("pytest collected", "")


def test_install_lines_bring_pytest_and_skip_dassl():
    setup = (ROOT / "setup.py").read_text()
    assert re.search(r'"test": \[[^\]]*"pytest>=7", "pytest-xdist', setup)  # README's test command uses -n
    install = " ".join(helper["commands"](README, "install"))
    assert "dassl" not in install.lower()  # Dassl is installed separately, by hand
    assert "Dassl.pytorch@" in README  # ... and README still says how


def test_missing_marker_is_an_error():
    with pytest.raises(SystemExit, match="ci: nothing"):
        helper["commands"](README, "nothing")


@pytest.mark.skipif(sys.platform == "win32", reason="bash script")
def test_ci_run_exits_with_pytest_status(tmp_path):
    """.ci/run fails (non-zero) when the test command fails, and names pytest's 'no tests' exit 5."""
    fake = tmp_path / "repo"
    (fake / ".ci").mkdir(parents=True)
    for name in ("run", "readme_commands.py"):
        (fake / ".ci" / name).write_bytes((ROOT / ".ci" / name).read_bytes())
    os.chmod(fake / ".ci" / "run", 0o755)
    for status, message in ((5, "collected no tests"), (3, "exited 3"), (0, None)):
        (fake / "README.md").write_text(
            "<!-- ci: install -->\n```bash\ntrue  # nothing to install\n```\n"
            f"<!-- ci: test -->\n```bash\nexit {status}\n```\n")
        done = subprocess.run(["bash", str(fake / ".ci" / "run")], capture_output=True, text=True)
        assert done.returncode == status, done.stderr
        if message:
            assert message in done.stderr
