"""Import the `clip` package (PyPI: clip-anytorch) without its setuptools noise.

`clip` imports `pkg_resources`, which warns on every import (and is gone in setuptools>=81,
hence the pin in setup.py). Import it once here so the rest of the project can do
`from clipprompt.backbones._clip import clip`.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import clip  # noqa: F401
    from clip import clip as clip_api  # noqa: F401  (the download helpers live here)
    from clip import model as clip_model  # noqa: F401

__all__ = ["clip", "clip_api", "clip_model"]
