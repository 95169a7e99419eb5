import pytest
import torch
from torch import nn

from gankit.errors import GankitError
from gankit.nets.darknet import Darknet, MnistNet, ResLayer, conv_layer


def _conv(ni: int, nf: int, ks: int) -> int:
    # Conv2d without bias plus BatchNorm's weight and bias.
    return ni * nf * ks * ks + 2 * nf


def _res(c: int) -> int:
    return _conv(c, c // 2, 1) + _conv(c // 2, c, 3)


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_default_darknet_parameter_count_matches_hand_count():
    expected = (
        _conv(3, 32, 3)
        + _conv(32, 64, 3)
        + 1 * _res(64)
        + _conv(64, 128, 3)
        + 2 * _res(128)
        + _conv(128, 256, 3)
        + 4 * _res(256)
        + _conv(256, 512, 3)
        + 6 * _res(512)
        + _conv(512, 1024, 3)
        + 3 * _res(1024)
        + 1024 * 10
        + 10
    )
    assert expected == 31_410_922
    assert _count(Darknet()) == expected


def test_conv_layer_is_conv_bn_leaky():
    layer = conv_layer(4, 6, ks=1, stride=2)
    conv, bn, act = layer
    assert conv.bias is None and conv.padding == (0, 0) and conv.stride == (2, 2)
    assert bn.momentum == 0.01
    assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.1
    assert conv_layer(4, 6)[0].padding == (1, 1)


def test_reslayer_adds_its_input():
    layer = ResLayer(8).eval()
    x = torch.randn(2, 8, 5, 5)
    branch = layer.conv2(layer.conv1(x.clone()))
    torch.testing.assert_close(layer(x), x + branch)


def test_small_darknet_shapes_strides_and_features():
    torch.manual_seed(0)
    net = Darknet(num_blocks=(1, 1, 1), num_classes=7, nf=4).eval()
    x = torch.randn(3, 3, 32, 32)
    # Group 0 halves, group 1 keeps, group 2 halves: 32 -> 16 -> 16 -> 8, 4 -> 32 channels.
    assert net.body(x).shape == (3, 32, 8, 8)
    feats = net.features(x)
    assert feats.shape == (3, 32) and net.num_features == 32
    torch.testing.assert_close(net(x), net.head(feats))
    torch.testing.assert_close(feats, net.body(x).mean(dim=(2, 3)))


def test_darknet_trains_a_step_and_bn_is_initialised():
    torch.manual_seed(0)
    net = Darknet(num_blocks=(1, 1), num_classes=3, nf=4)
    bn = net.body[0][1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_darknet_rejects_bad_config():
    with pytest.raises(GankitError, match="num_blocks"):
        Darknet(num_blocks=())
    with pytest.raises(GankitError, match="num_blocks"):
        Darknet(num_blocks=(1, -1))


def test_mnistnet_shapes_and_features():
    net = MnistNet().eval()
    x = torch.randn(4, 1, 28, 28)
    assert net(x).shape == (4, 10)
    assert net.features(x).shape == (4, 128)
    assert (net.features(x) >= 0).all()  # after ReLU
    assert MnistNet(in_channels=3, image_size=32)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(GankitError, match="image_size"):
        MnistNet(image_size=30)


def test_mnistnet_fits_a_tiny_batch():
    torch.manual_seed(0)
    net = MnistNet(dropout=0.0)
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(30):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (net(x).argmax(1) == y).float().mean() == 1.0
