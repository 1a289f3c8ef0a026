"""DePT on a base method: one trainer per base, `<Base>_DePT`, made from the base's trainer.

`with_dept(CoOp)` is the trainer `CoOp_DePT`: the base trainer's model (its options node
`TRAINER.COOP`, its own build) wrapped in `clipprompt.models.DePT` with the options of
`TRAINER.DEPT`. Its own name keeps its runs, checkpoints and results apart from the base's.
"""

from clipprompt.models.dept import DePT, DePTOptions
from clipprompt.runs.checkpoint import load_checkpoint

from ._dassl import TRAINER_REGISTRY
from .base import ClipTrainer
from .cocoop import CoCoOp
from .coop import CoOp
from .kgcoop import KgCoOp
from .maple import MaPLe


class DePTTrainer(ClipTrainer):
    """Mixed in before a base trainer: its model inside DePT, TRAINER.DEPT beside its node."""

    base_trainer: type[ClipTrainer]

    @classmethod
    def config_node_name(cls) -> str:
        return cls.base_trainer.config_node_name()

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        self.dept_options = DePTOptions.from_node(cfg.TRAINER.DEPT)

    def build_custom_model(self, clip, classnames):
        return DePT(super().build_custom_model(clip, classnames), self.dept_options)

    def _load(self, path: str, state: dict | None = None, same_classes: bool = False) -> dict:
        """Weights trained on other classes: the head keeps the rows of this run's classes, or is
        dropped where some class is not among them (see `DePT.fit_to_trained_classes`)."""
        state = load_checkpoint(path) if state is None else state
        fitted = self.model.fit_to_trained_classes(state["state_dict"], state.get("classnames"))
        if not self.model.head_active:
            print("These classes are not all among the trained ones: DePT's head is off, the base's logits decide")
        return super()._load(path, {**state, "state_dict": fitted}, same_classes)


def with_dept(base: type[ClipTrainer]) -> type[ClipTrainer]:
    """The registered trainer `<base>_DePT`."""
    trainer = type(f"{base.__name__}_DePT", (DePTTrainer, base), {"base_trainer": base, "__module__": __name__})
    return TRAINER_REGISTRY.register()(trainer)


CoOp_DePT = with_dept(CoOp)
CoCoOp_DePT = with_dept(CoCoOp)
KgCoOp_DePT = with_dept(KgCoOp)
MaPLe_DePT = with_dept(MaPLe)
