"""The GAN task's pieces: the host-counted EMA update equals AveragedModel's."""

import copy

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from gankit.tasks.gan import ema_with_warmup, update_ema


def test_update_ema_equals_averaged_model_update():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    ours = AveragedModel(copy.deepcopy(net), use_buffers=True)
    ref = AveragedModel(copy.deepcopy(net), multi_avg_fn=ema_with_warmup(0.99), use_buffers=True)
    for n in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net(torch.randn(6, 4))  # moves the BatchNorm statistics and its counter
        update_ema(ours, net, 0.99, n)
        ref.update_parameters(net)
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert int(ours.n_averaged) == 5
