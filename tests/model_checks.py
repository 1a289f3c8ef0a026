"""What the method tests do to every model: train a few steps on one batch, and run the same
model on the fast paths and then on the slow ones (each test keeps its own assertions)."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch


def train_steps(model, images, labels, optim, steps: int, record: str = "loss") -> list[float]:
    """`steps` optimizer steps on one batch; the summary's `record` value before each step."""
    values = []
    for _ in range(steps):
        loss, summary = model.loss(images, labels)
        values.append(summary[record])
        optim.zero_grad()
        loss.backward()
        optim.step()
    return values


def learned_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


class PathOutputs(NamedTuple):
    loss: torch.Tensor
    grads: dict[str, torch.Tensor]  # of every learned parameter
    logits: torch.Tensor  # evaluation logits


def fast_and_slow(model, images, labels) -> tuple[PathOutputs, PathOutputs]:
    """The training loss, its gradients and the evaluation logits on the exact fast paths (text
    features cached as the trainer evaluates), then on the slow ones (77-token prompts, CLIP's block
    forward, text features recomputed); `model` stays on the slow paths."""
    outputs = []
    for fast in (True, False):
        model.zero_grad()
        model.configure(eos_cut=fast, fused=fast)
        loss, _ = model.loss(images, labels)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        with torch.no_grad(), (model.cached_text_features() if fast else contextlib.nullcontext()):
            outputs.append(PathOutputs(loss.detach(), grads, model(images)))
    return outputs[0], outputs[1]


def reload_and_evaluate_new_classes(model, again, new, images, learned: set[str]) -> None:
    """`model`'s trained tensors, and only `learned`, are its checkpoint: `again` (same classes)
    loaded from it gives the same logits; `new` (other classes) loads it and evaluates, its class
    text features computed once per evaluation."""
    state = model.trainable_state_dict()
    assert set(state) == learned
    again.load_trainable_state_dict(state)
    new.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images))
        with new.cached_text_features():
            assert new(images).shape == (len(images), new.num_classes)
            assert new.text_features() is new.text_features()  # computed once per evaluation
