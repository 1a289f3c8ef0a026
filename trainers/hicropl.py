"""HiCroPL: deep prompts on both encoders, mapped across the towers, distilled towards frozen CLIP."""

from clipprompt.data.descriptions import load_descriptions
from clipprompt.models import HiCroPL as HiCroPLModel
from clipprompt.models.base import DEFAULT_TEMPLATE

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class HiCroPL(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        """The prepared descriptions (checked with the config: missing ones stop the run in one line), or
        with DESCRIPTIONS "" the dataset's hand-crafted prompt, one sentence per class."""
        cfg, chosen = self.cfg, self.options.descriptions
        if chosen:
            sentences = load_descriptions(cfg.DATASET.NAME, cfg.DATASET.ROOT, chosen, classnames)
        else:
            template = getattr(self.dm.dataset, "template", DEFAULT_TEMPLATE)
            sentences = [[template.format(name.replace("_", " "))] for name in classnames]
        return HiCroPLModel(clip, classnames, self.options, dict(zip(classnames, sentences)))
