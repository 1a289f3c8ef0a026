"""Importing our Dassl glue in a fresh interpreter: no third-party warning, logging left enabled, and
`datasets` loads Dassl but no trainer module."""
import subprocess
import sys
from pathlib import Path

from clipprompt.testing.markers import requires_dassl

REPO = Path(__file__).resolve().parent.parent

CODE = """
import logging, sys, threading
import datasets
print(logging.root.manager.disable, sorted(m for m in sys.modules if m.split('.')[0] == 'trainers'))
import trainers._dassl
for thread in threading.enumerate():  # WILDS and outdated check PyPI in background threads
    if thread is not threading.main_thread():
        thread.join(30)
print(logging.getLogger().isEnabledFor(logging.WARNING))
"""


@requires_dassl
def test_importing_datasets_then_trainers_prints_no_warning_and_keeps_logging():
    # -W default shows every warning once, as an interpreter without pytest's filters would
    done = subprocess.run([sys.executable, "-W", "default", "-c", CODE], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0 []", "True"]  # datasets: logging on, no trainer; then the trainers
    assert done.stderr == ""
