"""PromptSRC: independent deep prompts, self-regulated towards frozen CLIP, averaged over epochs (GPA)."""

from clipprompt.models import PromptSRC as PromptSRCModel
from clipprompt.models.promptsrc import GaussianPromptAverage, gaussian_epoch_weights

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer


@TRAINER_REGISTRY.register()
class PromptSRC(ClipTrainer):
    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)  # sets self.options; GPA's weights are checked before any data or weights load
        options = self.options
        if options.gpa:
            gaussian_epoch_weights(cfg.OPTIM.MAX_EPOCH, options.gpa_mean, options.gpa_std)

    def build_custom_model(self, clip, classnames):
        options = self.options
        model = PromptSRCModel(clip, classnames, options)
        if options.gpa:  # the model holds it so that checkpoints carry its running sum
            weights = gaussian_epoch_weights(self.cfg.OPTIM.MAX_EPOCH, options.gpa_mean, options.gpa_std)
            model.prompt_average = GaussianPromptAverage(weights)
        return model

    def after_epoch(self):
        """Add this epoch's prompts to the average; after the last epoch, continue with the average.

        Runs before Dassl's after_epoch, so the last checkpoint and the final test hold the average.
        """
        average = self.model.prompt_average
        if average is not None:
            average.add(self.epoch, self.model.learned_state_dict())
            if self.epoch + 1 == self.max_epoch:
                print("Gaussian prompt aggregation: loading the weighted average of every epoch's prompts")
                self.model.load_trainable_state_dict(average.result())
        super().after_epoch()
