"""CI runs exactly README's install and test blocks (read from README at run time)."""
from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
import types
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
    for name in ("run", "readme_commands.py", "dassl_setup.sh"):
        (fake / ".ci" / name).write_bytes((ROOT / ".ci" / name).read_bytes())
    os.chmod(fake / ".ci" / "run", 0o755)
    for status, message in ((5, "collected no tests"), (3, "exited 3"), (0, None)):
        (fake / "README.md").write_text(
            "Dassl.pytorch@" + "0" * 40 + " (no archive of it beside this fake checkout)\n"
            "<!-- ci: install -->\n```bash\ntrue  # nothing to install\n```\n"
            f"<!-- ci: test -->\n```bash\nexit {status}\n```\n")
        done = subprocess.run(["bash", str(fake / ".ci" / "run")], capture_output=True, text=True)
        assert done.returncode == status, done.stderr
        if message:
            assert message in done.stderr


def test_test_extra_brings_submitit_and_pytest_ini_needs_no_xdist():
    """The SLURM tests need submitit; pytest.ini holds no option that only pytest-xdist understands."""
    assert re.search(r'"test": \[[^\]]*"submitit', (ROOT / "setup.py").read_text())
    assert re.search(r'"test": \[[^\]]*"open-clip-torch', (ROOT / "setup.py").read_text())  # the backbone tests
    addopts = re.search(r"^addopts\s*=(.*)$", (ROOT / "pytest.ini").read_text(), re.MULTILINE).group(1)
    assert "--dist" not in addopts and "-n" not in addopts.split()
    # pytest without xdist reads pytest.ini and collects (conftest.py's own no-xdist path: test_xdist_schedules_by_group)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q", "--co",
                           "--noconftest", "tests/test_ci.py"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "test_test_extra_brings_submitit" in done.stdout, done.stdout + done.stderr


def test_xdist_schedules_by_group():
    import ci_policy

    for given, expected in (("load", "loadgroup"), ("no", "no"), ("loadfile", "loadfile")):
        config = types.SimpleNamespace(option=types.SimpleNamespace(dist=given))
        ci_policy.pytest_configure(config)
        assert config.option.dist == expected
    ci_policy.pytest_configure(types.SimpleNamespace(option=types.SimpleNamespace()))  # without xdist


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_skip_fails_under_ci_only(tmp_path, ci):
    """Under CI=true a skipped test, or a module skipped at import, fails the run with its reason."""
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n\ndef test_needs_dassl():\n    pytest.skip('needs Dassl')\n")
    (tmp_path / "test_module.py").write_text(
        "import pytest\npytest.importorskip('no_such_module_xyz', reason='submitit is not installed')\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT / "tests")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "ci_policy", "-p", "no:cacheprovider",
                           "--continue-on-collection-errors", "-c", os.devnull, str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path)
    if ci:
        assert done.returncode == 1, done.stdout
        assert "skipped under CI=true, which hides a missing install step: Skipped: needs Dassl" in done.stdout
        assert "skipped under CI=true, which hides a missing install step: Skipped: submitit is not installed" \
            in done.stdout
    else:
        assert done.returncode == 0, done.stdout
        assert "2 skipped" in done.stdout


def _fake_checkout(tmp_path, pinned: str) -> Path:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / ".ci" / "dassl_setup.sh").write_bytes((ROOT / ".ci" / "dassl_setup.sh").read_bytes())
    (repo / "README.md").write_text(f'pip install "dassl @ git+https://github.com/KaiyangZhou/Dassl.pytorch@{pinned}"\n')
    return repo


def test_dassl_setup_without_the_pinned_source_installs_nothing(tmp_path):
    repo = _fake_checkout(tmp_path, "c" * 40)
    done = subprocess.run(["bash", str(repo / ".ci" / "dassl_setup.sh")], capture_output=True, text=True)
    assert done.returncode == 0
    assert "no pinned Dassl source at" in done.stderr and "/Dassl.pytorch-ccccccc.tar.gz;" in done.stderr


def test_dassl_setup_refuses_an_archive_of_another_commit(tmp_path):
    """The archive CI installs must be the commit README pins (git archive records it)."""
    source = tmp_path / "dassl"
    source.mkdir()
    git = ["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(source)], check=True)
    (source / "setup.py").write_text("")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    pinned = "d" * 40
    vendor = tmp_path / "shared" / "vendor"
    vendor.mkdir(parents=True)
    archive = vendor / f"Dassl.pytorch-{pinned[:7]}.tar.gz"
    subprocess.run([*git, "archive", "--format=tar.gz", "-o", str(archive), "HEAD"], check=True)
    repo = _fake_checkout(tmp_path, pinned)
    done = subprocess.run(["bash", str(repo / ".ci" / "dassl_setup.sh")], capture_output=True, text=True)
    assert done.returncode == 1
    assert f"holds commit '{commit}', README pins {pinned}" in done.stderr
