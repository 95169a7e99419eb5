"""Eval mode for a block of code, restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(*nets: nn.Module) -> Iterator[None]:
    """Put ``nets`` in eval mode (BatchNorm statistics, dropout off) for the block, then give each
    back the mode it had, also when the block raises."""
    was = [net.training for net in nets]
    try:
        for net in nets:
            net.eval()
        yield
    finally:
        for net, mode in zip(nets, was, strict=True):
            net.train(mode)
