"""PromptSRC: independent deep prompts, self-regulated towards frozen CLIP, averaged over epochs (GPA)."""

import warnings

from clipprompt.models import PromptSRC as PromptSRCModel
from clipprompt.models.promptsrc import GaussianPromptAverage, PromptSRCOptions, gaussian_epoch_weights

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class PromptSRC(ClipTrainer):
    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        options = PromptSRCOptions.from_node(cfg.TRAINER.PROMPTSRC)  # before any data or weights load
        if options.gpa:
            gaussian_epoch_weights(cfg.OPTIM.MAX_EPOCH, options.gpa_mean, options.gpa_std)

    def build_custom_model(self, clip, classnames):
        options = PromptSRCOptions.from_node(self.trainer_cfg)
        self.prompt_average = None
        if options.gpa:
            weights = gaussian_epoch_weights(self.cfg.OPTIM.MAX_EPOCH, options.gpa_mean, options.gpa_std)
            self.prompt_average = GaussianPromptAverage(weights)
        return PromptSRCModel(clip, classnames, options, fused=self.cfg.MODEL.FUSED_ATTENTION)

    def before_train(self):
        super().before_train()
        if self.prompt_average is not None and self.start_epoch > 0:
            warnings.warn(
                f"Resumed at epoch {self.start_epoch + 1}: the Gaussian prompt average (GPA) only covers "
                "the epochs trained from here on.",
                stacklevel=2,
            )

    def after_epoch(self):
        """Add this epoch's prompts to the average; after the last epoch, continue with the average.

        Runs before Dassl's after_epoch, so the last checkpoint and the final test hold the average.
        """
        if self.prompt_average is not None:
            self.prompt_average.add(self.epoch, self.model.trainable_state_dict())
            if self.epoch + 1 == self.max_epoch:
                print("Gaussian prompt aggregation: loading the weighted average of every epoch's prompts")
                self.model.load_trainable_state_dict(self.prompt_average.result())
        super().after_epoch()
