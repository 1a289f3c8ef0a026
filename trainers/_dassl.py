"""Import Dassl once, undoing its process-wide side effect.

Importing Dassl imports its WILDS datasets module, which calls `logging.disable(WARNING)`
for the whole process and so hides every library's warnings. Re-enable logging right after.
Everything of Dassl's that this project uses is imported from here.
"""

import logging
import warnings

with warnings.catch_warnings():
    # WILDS' dependency `outdated` imports the deprecated pkg_resources
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import dassl  # noqa: F401  (triggers the logging.disable)
    from dassl.config import get_cfg_default  # noqa: F401
    from dassl.data import DataManager  # noqa: F401
    from dassl.data.data_manager import DatasetWrapper  # noqa: F401
    from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum  # noqa: F401
    from dassl.data.data_manager import build_data_loader  # noqa: F401
    from dassl.engine import TRAINER_REGISTRY, TrainerX, build_trainer  # noqa: F401
    from dassl.optim import build_optimizer  # noqa: F401
    from dassl.utils import set_random_seed, setup_logger  # noqa: F401

logging.disable(logging.NOTSET)
