"""Learning-rate schedules of the CoOp family, as plain `torch.optim` schedulers.

Dassl's warm-up schedulers pass `verbose` positionally to `LRScheduler.__init__`, which newer
torch no longer accepts, and they keep a scheduler object in their state, which
`torch.load(weights_only=True)` refuses. The same schedules written as one `LambdaLR` have
plain state and the exact per-epoch rates of Dassl's: during warm-up a constant `cons_lr` (or a
linear ramp from `min_lr`), then the main schedule counted from the end of warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("cosine", "single_step", "multi_step")
WARMUPS = ("constant", "linear")


def main_factor(name: str, epoch: int, max_epoch: int, stepsize: Sequence[int] | int, gamma: float) -> float:
    """Multiplier of the base LR after `epoch` steps of the main schedule."""
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / max_epoch))
    if name == "single_step":
        size = stepsize[-1] if isinstance(stepsize, (list, tuple)) else int(stepsize)
        size = size if size > 0 else max_epoch
        return gamma ** (epoch // size)
    if name == "multi_step":
        milestones = stepsize if isinstance(stepsize, (list, tuple)) else [stepsize]
        return gamma ** sum(epoch >= m for m in milestones)
    raise ValueError(f"OPTIM.LR_SCHEDULER must be one of {', '.join(SCHEDULES)}, got {name!r}")


def build_lr_scheduler(
    optimizer: Optimizer,
    name: str = "cosine",
    max_epoch: int = 10,
    stepsize: Sequence[int] | int = -1,
    gamma: float = 0.1,
    warmup_epoch: int = 0,
    warmup_type: str = "constant",
    warmup_cons_lr: float = 1e-5,
    warmup_min_lr: float = 1e-5,
    warmup_recount: bool = True,
) -> LambdaLR:
    """A per-epoch scheduler (step it once per epoch) matching Dassl's `build_lr_scheduler`.

    With several parameter groups (DePT's head at its own rate), each follows the schedule from
    its own rate, and during a constant warm-up every group runs at `warmup_cons_lr`, as Dassl's."""
    main_factor(name, 0, max(1, max_epoch), stepsize, gamma)  # validate the name now
    if warmup_epoch > 0 and warmup_type not in WARMUPS:
        raise ValueError(f"OPTIM.WARMUP_TYPE must be one of {', '.join(WARMUPS)}, got {warmup_type!r}")

    def group_factor(base_lr: float):
        def factor(epoch: int) -> float:
            if epoch < warmup_epoch:
                if warmup_type == "constant":
                    return warmup_cons_lr / base_lr
                if epoch == 0:
                    return warmup_min_lr / base_lr
                return epoch / warmup_epoch
            # WARMUP_RECOUNT (Dassl's default): the main schedule starts counting when warm-up ends
            offset = warmup_epoch if warmup_recount else 0
            return main_factor(name, epoch - offset, max(1, max_epoch), stepsize, gamma)

        return factor

    factors = [group_factor(group["lr"]) for group in optimizer.param_groups]
    return LambdaLR(optimizer, factors[0] if len(factors) == 1 else factors)


def build_lr_scheduler_from_cfg(optimizer: Optimizer, optim_cfg) -> LambdaLR:
    """`build_lr_scheduler` with Dassl's `OPTIM` config node."""
    warmup = optim_cfg.WARMUP_EPOCH if optim_cfg.get("WARMUP_EPOCH", 0) else 0
    return build_lr_scheduler(
        optimizer,
        name=optim_cfg.LR_SCHEDULER,
        max_epoch=optim_cfg.MAX_EPOCH,
        stepsize=optim_cfg.STEPSIZE,
        gamma=optim_cfg.GAMMA,
        warmup_epoch=warmup,
        warmup_type=optim_cfg.get("WARMUP_TYPE", "constant"),
        warmup_cons_lr=optim_cfg.get("WARMUP_CONS_LR", 1e-5),
        warmup_min_lr=optim_cfg.get("WARMUP_MIN_LR", 1e-5),
        warmup_recount=optim_cfg.get("WARMUP_RECOUNT", True),
    )
