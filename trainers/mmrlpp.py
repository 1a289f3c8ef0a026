"""MMRL++: MMRL's trainer with shared residual maps, a token residual (β) and a low-rank P_r."""

from clipprompt.models.mmrlpp import MMRLpp as MMRLppModel

from ._dassl import TRAINER_REGISTRY
from .mmrl import MMRL


@TRAINER_REGISTRY.register()
class MMRLpp(MMRL):
    model_class = MMRLppModel
