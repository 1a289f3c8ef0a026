"""What a resumable checkpoint holds besides the weights, and how a resume checks it (Dassl-free).

A run is resumable to the bit only if everything that drives it comes back: the RNG states, where
the run stood (epoch and step), and the configuration it was started with. This module turns
those into plain values and tensors (so checkpoints load with `weights_only=True`); a resume
compares the stored configuration with the current one through the run identity
(`clipprompt.results.identity.differences`): keys that cannot change the result (worker counts,
print frequency, where the output goes) may differ; any other difference refuses the resume.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch



# ---- RNG -------------------------------------------------------------------------------------


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as plain values and tensors (weights_only-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.copy()), "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy(), np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    """random.setstate wants the nested tuples that a save-load round trip may turn into lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


# ---- where a run stands ------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Progress:
    """`epochs` finished, then `steps` done in the next epoch (0 at an epoch end)."""

    epochs: int
    steps: int = 0

    def describe(self, max_epoch: int | None = None) -> str:
        of = f" of {max_epoch}" if max_epoch else ""
        if self.steps == 0:
            return f"epoch {self.epochs}{of} finished"
        return f"epoch {self.epochs + 1}{of}, after step {self.steps}"


# ---- configuration -----------------------------------------------------------------------------


def flat_config(cfg) -> dict[str, Any]:
    """Every leaf of a yacs config as `{"A.B": value}`, with tuples as lists (weights_only-safe)."""
    out: dict[str, Any] = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value

    walk(cfg, "")
    return out


def same_backbone(a: str, b: str) -> bool:
    """Backbone names compare as given; a file path compares by its file name (a moved copy is the same)."""
    import os.path as osp

    return a == b or (osp.basename(a) == osp.basename(b) and osp.sep in a + b)
