"""Dassl trainers of this project; importing the package registers them all."""

from . import cocoop, coop, dept, ivlp, kgcoop, maple, mma, mmrl, mpl, prograd, promptkd, promptsrc, sep, tcp, vpt, zeroshot  # noqa: F401
from .base import ClipTrainer  # noqa: F401
