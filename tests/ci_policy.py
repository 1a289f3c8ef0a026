"""How the suite runs in CI and under pytest-xdist, as a pytest plugin (registered by conftest.py)."""

import os

import pytest


def pytest_configure(config):
    """Under pytest-xdist (`-n`), schedule by group (conftest.py groups the tiny sweep's tests). Set
    here rather than in pytest.ini, so the suite also runs where pytest-xdist is not installed."""
    if getattr(config.option, "dist", None) == "load":  # what xdist makes of -n without --dist
        config.option.dist = "loadgroup"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skip is a failure: a test that skips in CI (Dassl or SLURM missing) hides an
    install step that did not happen. Elsewhere tests keep skipping with their reason."""
    _fail_skip_in_ci((yield).get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at import (`pytest.importorskip` of submitit or Dassl)."""
    _fail_skip_in_ci((yield).get_result())


def _fail_skip_in_ci(report) -> None:
    if os.environ.get("CI", "").lower() == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which hides a missing install step: {reason}"
