"""Each use of randomness in a run has its own seed offset."""

import torch

from gankit import seeds
from gankit.nets.eval_mode import eval_mode


def test_offsets_are_distinct_and_generators_reproducible():
    offsets = [seeds.PREVIEW, seeds.AUGMENT, seeds.VBN_REFERENCE, seeds.EVALUATION]
    assert len(set(offsets)) == len(offsets) and max(offsets) < seeds.STREAM
    a = torch.randn(3, generator=seeds.generator(7, seeds.PREVIEW))
    b = torch.randn(3, generator=seeds.generator(7, seeds.PREVIEW))
    c = torch.randn(3, generator=seeds.generator(7, seeds.EVALUATION))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_mode_restores_each_networks_mode_even_after_an_error():
    train, evaluating = torch.nn.Dropout(), torch.nn.Dropout().eval()
    try:
        with eval_mode(train, evaluating):
            assert not train.training and not evaluating.training
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    assert train.training and not evaluating.training
