"""Dassl trainers of this project; importing the package registers them all."""

from . import cocoop, coop, kgcoop, maple, mpl, promptsrc, sep, tcp, zeroshot  # noqa: F401
from .base import ClipTrainer  # noqa: F401
