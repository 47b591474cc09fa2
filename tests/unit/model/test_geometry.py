"""featureviz.model.geometry: channels and sides of each layer, the convolutions' cost."""
from featureviz.model.geometry import conv_flops, min_input_side, output_channels, output_side
from featureviz.model.lean import single_channel
from featureviz.model.pool_relu import PoolReLU


def test_layer_geometry(features):
    assert output_channels(features, 0) == 64
    assert output_channels(features, 43) == 512
    assert output_side(features, 42, 224) == 14 and output_side(features, 43, 224) == 7
    assert min_input_side(features, 40) == 16 and min_input_side(features, 43) == 32
    assert min_input_side(features, 5) == 1


def test_conv_flops_count_the_lean_networks_convolutions_through_its_fused_pools(features):
    # layer 7 = conv2_1 on a 32 px input: conv1_1 (3 -> 64) and conv1_2 (64 -> 64) at 32 px, then the
    # pool (fused with its ReLU in the lean network) and conv2_1 at 16 px, one channel in the lean one
    lean = single_channel(features, 7, 5)
    assert any(isinstance(m, PoolReLU) for m in lean)
    assert conv_flops(lean, 32) == 2 * 9 * (3 * 64 * 32**2 + 64 * 64 * 32**2 + 64 * 1 * 16**2)
    assert conv_flops(features[:8], 32) == 2 * 9 * (3 * 64 * 32**2 + 64 * 64 * 32**2 + 64 * 128 * 16**2)
