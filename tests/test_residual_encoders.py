import pytest
import torch

from selfsup.config.schema import ModelConfig
from selfsup.models import ENCODERS, InputSpec, build_encoder


@pytest.mark.parametrize("name", ["resnet-small", "plainnet-small"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_stages_and_features(name, shape):
    cfg = ModelConfig(encoder=name, width=8)
    encoder = build_encoder(cfg, InputSpec(shape[0], shape), [0.5] * shape[0], [0.25] * shape[0])
    x = torch.rand(2, *shape)
    encoder.eval()
    stages = encoder.forward_stages(x)
    side = shape[-1]
    expected = {"block1": (8, side // 2), "block2": (16, side // 4), "block3": (32, -(-side // 8)),
                "block4": (64, -(-side // 8))}
    assert {k: (v.shape[1], v.shape[-1]) for k, v in stages.items()} == expected
    assert encoder.feature_dim == 64
    torch.testing.assert_close(encoder(x), stages["block4"].mean(dim=(2, 3)))


def test_the_two_networks_differ_only_in_the_skip_connections():
    spec = InputSpec(1, (1, 28, 28))
    resnet = ENCODERS.get("resnet-small")(ModelConfig(width=4), spec)
    plain = ENCODERS.get("plainnet-small")(ModelConfig(width=4), spec)
    assert [(k, v.shape) for k, v in resnet.state_dict().items()] == [(k, v.shape) for k, v in plain.state_dict().items()]
    plain.load_state_dict(resnet.state_dict())
    # silence the second conv of every block (its BN weight and bias to 0): a residual block
    # then passes its (non-negative, post-ReLU) input through unchanged, a plain block outputs 0
    for net in (resnet, plain):
        net.eval()
        for name, module in net.named_modules():
            if name.endswith(".body.4"):
                module.weight.data.zero_()
                module.bias.data.zero_()
    x = torch.rand(2, 1, 28, 28)
    first_conv = resnet.stages["block1"][:3]
    torch.testing.assert_close(resnet.stages["block1"][:4](x), first_conv(x))
    assert plain.stages["block1"][:4](x).abs().max() == 0
