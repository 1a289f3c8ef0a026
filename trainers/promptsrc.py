"""PromptSRC: independent deep prompts, self-regulated towards frozen CLIP, averaged over epochs (GPA)."""

from clipprompt.errors import ConfigError
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
        check_prompt_depths(options, text_blocks=clip.transformer.layers, vision_blocks=clip.visual.transformer.layers)
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


def check_prompt_depths(options, text_blocks: int, vision_blocks: int) -> None:
    """Both prompt depths against this CLIP's encoders, every key too deep in one line (one run names them all)."""
    problems = [
        f"TRAINER.PROMPTSRC.{key} is {depth}, but this CLIP's {encoder} encoder has {blocks} blocks"
        for key, depth, encoder, blocks in (
            ("PROMPT_DEPTH_TEXT", options.prompt_depth_text, "text", text_blocks),
            ("PROMPT_DEPTH_VISION", options.prompt_depth_vision, "image", vision_blocks),
        )
        if depth > blocks
    ]
    if problems:
        raise ConfigError("; ".join(problems) + ".")
