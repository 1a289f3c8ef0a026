"""MMRL: representation tokens in both encoders; fused heads on trained classes, the class token's on others."""

from clipprompt.models.base import DEFAULT_TEMPLATE
from clipprompt.models.mmrl import MMRL as MMRLModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class MMRL(ClipTrainer):
    model_class = MMRLModel

    def build_custom_model(self, clip, classnames):
        template = getattr(self.dm.dataset, "template", DEFAULT_TEMPLATE)
        return self.model_class(clip, classnames, self.options, template=template)

    def _load(self, path, state=None, same_classes=False):
        """Loaded weights remember their training classes: EVAL_HEAD auto scores other classes (new
        classes, other datasets) with the class token alone."""
        state = super()._load(path, state, same_classes)
        self.model.trained_classnames = state.get("classnames")
        trained_here = state.get("classnames") in (None, list(self.model.classnames))
        head = "fusion" if self.model.uses_fusion() else "class token"
        print(f"{type(self).__name__} evaluation head: {head} (weights trained on {'these' if trained_here else 'other'} classes)")
        return state
