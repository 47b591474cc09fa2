"""relu(conv(x)) as one module: on the CPU, oneDNN's convolution with the ReLU applied as it writes
its output (the kernel PyTorch's compiler uses, `mkldnn::_convolution_pointwise`), saving the
ReLU's pass over the activations; the backward pass is autograd's own (the ReLU's mask, then the
convolution's input gradient). Same values and gradients as conv then ReLU; elsewhere it is that."""
import torch
import torch.nn.functional as F
from torch import nn


def _fused_op():
    mkldnn = getattr(torch.ops, "mkldnn", None)
    return getattr(mkldnn, "_convolution_pointwise", None) if torch.backends.mkldnn.is_available() else None


class _ConvReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, conv):
        y = _fused_op()(x, weight, bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups,
                        "relu", [], "")
        ctx.save_for_backward(x, weight, y)
        ctx.conv = conv
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, y = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        conv = ctx.conv
        grad_out = torch.ops.aten.threshold_backward(grad_y.to(y.dtype), y, 0)
        grad_x = torch.ops.aten.convolution_backward(
            grad_out, x, weight, None, list(conv.stride), list(conv.padding), list(conv.dilation), False, [0, 0],
            conv.groups, [True, False, False])[0]
        return grad_x, None, None, None


class ConvReLU(nn.Module):
    """relu(conv(x)) for a frozen convolution `conv` (its weights get no gradient)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        conv = self.conv
        if (x.device.type != "cpu" or conv.padding_mode != "zeros" or isinstance(conv.padding, str)
                or conv.weight.requires_grad or _fused_op() is None):
            return F.relu(conv(x), inplace=True)
        weight, bias = conv.weight, conv.bias
        if torch.is_autocast_enabled("cpu"):  # what autocast does for a convolution
            dtype = torch.get_autocast_dtype("cpu")
            x, weight = x.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        return _ConvReLU.apply(x, weight, bias, conv)
