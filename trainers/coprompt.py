"""CoPrompt: MaPLe's prompts with adapters, consistent with frozen CLIP on descriptions and a second view."""

from clipprompt.data.descriptions import load_descriptions
from clipprompt.models import CoPrompt as CoPromptModel

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class CoPrompt(ClipTrainer):
    def build_custom_model(self, clip, classnames):
        """The descriptions are read before the model is built: without them the run stops here, in one line."""
        cfg = self.cfg
        descriptions = load_descriptions(cfg.DATASET.NAME, cfg.DATASET.ROOT, self.options.descriptions, classnames)
        return CoPromptModel(clip, classnames, self.options, descriptions)

    def parse_batch_train(self, batch):
        """(first view, second view) with DATALOADER.K_TRANSFORMS 2 (Dassl gives a list of views), else one tensor."""
        images, labels = batch["img"], batch["label"].to(self.device)
        if isinstance(images, (list, tuple)):
            return tuple(view.to(self.device) for view in images), labels
        return images.to(self.device), labels
