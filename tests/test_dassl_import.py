"""Importing our Dassl glue shows no third-party warning and leaves logging enabled."""
import subprocess
import sys
from pathlib import Path

from clipprompt.testing.markers import requires_dassl

REPO = Path(__file__).resolve().parent.parent

CODE = """
import logging, threading
import trainers._dassl
for thread in threading.enumerate():  # WILDS and outdated check PyPI in background threads
    if thread is not threading.main_thread():
        thread.join(30)
print(logging.getLogger().isEnabledFor(logging.WARNING))
"""


@requires_dassl
def test_importing_dassl_prints_no_warning():
    # -W default shows every warning once, as an interpreter without pytest's filters would
    done = subprocess.run([sys.executable, "-W", "default", "-c", CODE], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert done.stderr == ""
