"""Dassl trainers of this project; importing the package registers them all."""

from . import cocoop, coop, coprompt, dept, hicropl, ivlp, kgcoop, maple, mma, mmrl, mmrlpp, mpl, prograd, promptkd, promptsrc, sep, tcp, vpt, zeroshot  # noqa: F401
from .base import ClipTrainer  # noqa: F401
