"""Install the Dassl-free core (`clipprompt`) and the project's requirements.

Only the `clipprompt` package is installed. The Dassl glue (`datasets/`, `trainers/`) and
`train.py` are used from the repository root, as in every CoOp-family repo; they are never
installed into site-packages, so this project's `datasets` folder cannot shadow the Hugging
Face `datasets` package, and that package cannot shadow ours when `train.py` runs.
"""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).resolve().parent
requirements = [
    line.split("#")[0].strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="clipprompt",
    version="0.1.0",
    description="SEP and MPL prompt tuning for CLIP, as Dassl trainers (with zero-shot CLIP, CoOp, CoCoOp, KgCoOp, "
                "TCP, MaPLe and PromptSRC baselines)",
    long_description=(here / "README.md").read_text(encoding="utf-8") if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["clipprompt", "clipprompt.*"]),
    package_data={"clipprompt.results": ["published/*.csv", "published/*.md"]},
    install_requires=requirements,
    extras_require={
        # pytest-xdist runs the tests on every core (-n auto); the report's figures, the SLURM
        # launcher (submitit) and the open_clip backbones are tested too
        "test": ["pytest>=7", "pytest-xdist>=3", "matplotlib>=3.5", "submitit>=1.5", "open-clip-torch>=2.24"],
        "plot": ["matplotlib>=3.5"],
        "slurm": ["submitit>=1.5"],
        # open_clip models as MODEL.BACKBONE.NAME openclip:<ARCHITECTURE>:<WEIGHTS> (docs/backbones.md)
        "openclip": ["open-clip-torch>=2.24"],
    },
    entry_points={
        "console_scripts": [
            "clipprompt-random-clip=clipprompt.backbones.random_clip:main",
            "clipprompt-prepare=clipprompt.data.prepare:main",
            "clipprompt-report=clipprompt.results.report:main",
        ]
    },
)
