"""pytest markers shared by the test suite."""

import importlib.util

import pytest

HAS_DASSL = importlib.util.find_spec("dassl") is not None

requires_dassl = pytest.mark.skipif(
    not HAS_DASSL,
    reason="needs Dassl, which is not on PyPI: pip install --no-build-isolation "
    "git+https://github.com/KaiyangZhou/Dassl.pytorch (see README, Install)",
)
