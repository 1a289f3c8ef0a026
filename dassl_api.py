"""Import Dassl once, undoing its process-wide side effects, so a normal run shows no third-party warning.

- Importing Dassl imports its WILDS datasets module, which calls `logging.disable(WARNING)` for
  the whole process and so hides every library's warnings. Logging is re-enabled right after.
- WILDS imports `outdated`, which checks PyPI for newer versions in background threads; offline
  it warns "Failed to check for latest version of package" (`OutdatedCheckFailedWarning`), and
  it imports the deprecated `pkg_resources`. WILDS sets `OUTDATED_IGNORE=1` so that `outdated`
  installs its own ignore filter; that filter must outlive the import (a `catch_warnings` block
  around the import used to discard it, so the threads' warnings came through later). The
  `pkg_resources` notice is filtered for `outdated` only, by module, and for good.

- Dassl's randaugment (CoPrompt's recipe) has one operation, `SolarizeAdd`, written with `np.int`,
  which NumPy 1.24 removed: a batch that draws it stops the run. It is replaced by the same
  operation with `int` (what `np.int` was).

Everything of Dassl's that this project uses is imported from here. A top-level module (like
`train.py`, used from the repository root) so that `datasets/` and `trainers/` share it without one
importing the other; `trainers/_dassl.py` re-exports it.
"""

import logging
import os
import warnings

os.environ.setdefault("OUTDATED_IGNORE", "1")  # before WILDS imports `outdated` (it sets it too)
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning,
                        module=r"outdated(\.|$)")
warnings.filterwarnings("ignore", message="Failed to check for latest version", module=r"outdated(\.|$)")

import dassl  # noqa: E402,F401  (triggers the logging.disable)
from dassl.config import get_cfg_default  # noqa: E402,F401
from dassl.data import DataManager  # noqa: E402,F401
from dassl.data.data_manager import DatasetWrapper  # noqa: E402,F401
from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum  # noqa: E402,F401
from dassl.data.data_manager import build_data_loader  # noqa: E402,F401
from dassl.engine import TRAINER_REGISTRY, TrainerX, build_trainer  # noqa: E402,F401
from dassl.optim import build_optimizer  # noqa: E402,F401
from dassl.utils import AverageMeter, MetricMeter, set_random_seed  # noqa: E402,F401

logging.disable(logging.NOTSET)


def _solarize_add(img, addition=0, threshold=128):
    """Dassl's randaugment `SolarizeAdd`, with `int` for the `np.int` that NumPy removed."""
    import numpy as np
    import PIL.ImageOps
    from PIL import Image

    pixels = np.clip(np.array(img).astype(int) + addition, 0, 255).astype(np.uint8)
    return PIL.ImageOps.solarize(Image.fromarray(pixels), threshold)


import dassl.data.transforms.randaugment as _randaugment  # noqa: E402

_randaugment.SolarizeAdd = _solarize_add  # randaugment_list() reads the module's name at each RandAugment()

__all__ = [
    "AverageMeter", "DATASET_REGISTRY", "DataManager", "MetricMeter", "DatasetBase", "DatasetWrapper", "Datum", "TRAINER_REGISTRY", "TrainerX",
    "build_data_loader", "build_optimizer", "build_trainer", "get_cfg_default", "set_random_seed",
]
