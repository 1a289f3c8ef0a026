"""Import Dassl once, undoing its process-wide side effect.

Importing Dassl imports its WILDS datasets module, which calls `logging.disable(WARNING)`
for the whole process and so hides every library's warnings. Re-enable logging right after.
"""

import logging

import dassl  # noqa: F401  (triggers the logging.disable)
from dassl.data.datasets import DATASET_REGISTRY  # noqa: F401
from dassl.engine import TRAINER_REGISTRY, TrainerX  # noqa: F401

logging.disable(logging.NOTSET)
