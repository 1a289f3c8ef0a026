"""HiCroPL: deep prompts on both encoders, mapped across the towers, distilled towards frozen CLIP."""

from clipprompt.models import HiCroPL as HiCroPLModel
from clipprompt.models.base import DEFAULT_TEMPLATE
from clipprompt.models.hicropl import load_descriptions

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class HiCroPL(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        path = self.options.descriptions
        if path:
            descriptions = load_descriptions(path, classnames)
        else:  # the dataset's hand-crafted prompt, one "description" per class
            template = getattr(self.dm.dataset, "template", DEFAULT_TEMPLATE)
            descriptions = {name: [template.format(name.replace("_", " "))] for name in classnames}
        return HiCroPLModel(clip, classnames, self.options, descriptions)
