"""Dassl for the trainers (`from ._dassl import TRAINER_REGISTRY`): a re-export of `dassl_api`."""

from dassl_api import *  # noqa: F401,F403
from dassl_api import __all__  # noqa: F401
