"""Numeric precision of a run, resolved once from the trainer's `PREC` key.

CoOp-family repos cast CLIP to fp16 by hand and break on the CPU ("not implemented for
'Half'"). Here a precision is a small value object: which dtype the frozen weights take and
which autocast context the forward pass runs under, so model code never casts modules itself.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..options import PRECISIONS  # the names, stated once in the torch-free options module


@dataclass(frozen=True)
class Precision:
    """How a run computes: `name` as resolved (after any CPU fallback)."""

    name: str
    device_type: str
    weight_dtype: torch.dtype = torch.float32
    autocast_dtype: torch.dtype | None = None
    fallback: str = ""  # why the precision asked for was replaced, for a one-line notice; "" if it was not

    @property
    def uses_grad_scaler(self) -> bool:
        """fp16 autocast needs loss scaling; bf16 has fp32's range and does not."""
        return self.autocast_dtype is torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)


def resolve_precision(name: str, device: torch.device | str) -> Precision:
    """Map `PREC` to a Precision for `device`, falling back to fp32 where the CPU cannot follow.

    - fp32: fp32 weights, no autocast.
    - fp16: fp16 weights (the CoOp recipe) and fp16 autocast, so the learned fp32 modules
            meet fp16 activations without hand casts; CUDA only, fp32 on the CPU (`fallback` says so).
    - amp:  fp32 weights, fp16 autocast and a grad scaler; CUDA only, fp32 on the CPU (`fallback` says so).
    - bf16: fp32 weights, bf16 autocast; works on the CPU and the GPU.
    """
    name = str(name).lower()
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}: PREC must be one of {', '.join(PRECISIONS)}")
    device_type = torch.device(device).type
    if name in ("fp16", "amp") and device_type != "cuda":
        fallback = (f"PREC {name} needs a CUDA device; running in fp32 on {device_type} instead "
                    "(use PREC bf16 for reduced precision on the CPU).")
        return Precision("fp32", device_type, fallback=fallback)
    if name == "fp16":
        return Precision(name, device_type, weight_dtype=torch.float16, autocast_dtype=torch.float16)
    if name == "amp":
        return Precision(name, device_type, autocast_dtype=torch.float16)
    if name == "bf16":
        return Precision(name, device_type, autocast_dtype=torch.bfloat16)
    return Precision(name, device_type)
