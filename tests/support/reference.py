"""Independent computations the engine is checked against: a fresh torchvision vgg16_bn run module by
module, hand-written guided and deconvnet ReLU rules, a direct autograd Grad-CAM, occlusion by
repeated forward passes, captum's NeuronDeconvolution."""
import pytest
import torch
from captum.attr import NeuronDeconvolution
from torch import nn
from torchvision.models import vgg16_bn

from featureviz.model.network import normalize


def reference_layer_output(state_dict, layer, x, grad: bool = False):
    """An independent forward pass: a fresh torchvision vgg16_bn, modules applied one by one
    (with `grad`, differentiable in x)."""
    net = vgg16_bn(weights=None)
    net.load_state_dict(state_dict)
    net.eval()
    with torch.set_grad_enabled(grad):
        for module in list(net.features)[: layer + 1]:
            x = module(x.clone())
    return x



def logits(reference, x):
    return reference(normalize(x))


def top1(reference, x):
    with torch.no_grad():
        return int(logits(reference, x).argmax())


class ReluRule(torch.autograd.Function):
    """ReLU forward; backward by `rule`: guided backprop or the deconvnet's ReLU on the signal."""

    @staticmethod
    def forward(ctx, x, rule):
        ctx.save_for_backward(x)
        ctx.rule = rule
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if ctx.rule == "guided":
            return grad.clamp(min=0) * (x > 0), None
        return grad.clamp(min=0), None


class RuleReLU(nn.Module):
    def __init__(self, rule):
        super().__init__()
        self.rule = rule

    def forward(self, x):
        return ReluRule.apply(x, self.rule)


def with_relu_rule(reference, rule):
    model = vgg16_bn(weights=None)
    model.load_state_dict(reference.state_dict())
    for part in (model.features, model.classifier):
        for i, module in enumerate(part):
            if isinstance(module, nn.ReLU):
                part[i] = RuleReLU(rule)
    return model.eval().requires_grad_(False)


def expected_saliency(reference, x, target, method):
    model = reference if method == "vanilla" else with_relu_rule(reference, method)
    x = x.clone().requires_grad_()
    logits(model, x)[0, target].backward()
    return x.grad.abs().amax(dim=1)[0]


def expected_gradcam(reference, pixels, layer, target):
    """Grad-CAM by hand: the layer's activations as a leaf, autograd for the score's gradients."""
    with torch.enable_grad():
        head = normalize(pixels)
        for module in list(reference.features)[: layer + 1]:
            head = module(head.clone())
        activations = head.detach().requires_grad_()
        rest = activations
        for module in list(reference.features)[layer + 1:]:
            rest = module(rest.clone())
        score = reference.classifier(torch.flatten(reference.avgpool(rest), 1))[0, target]
        (grads,) = torch.autograd.grad(score, activations)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * activations).sum(dim=1))[0]


def expected_occlusion(reference, x, target, window, stride):
    offsets = range(0, x.shape[-1] - window + 1, stride)
    expected = torch.empty(len(offsets), len(offsets))
    with torch.no_grad():
        for i, y in enumerate(offsets):
            for j, x0 in enumerate(offsets):
                occluded = x.clone()
                occluded[..., y:y + window, x0:x0 + window] = 0.5
                expected[i, j] = logits(reference, occluded).softmax(dim=1)[0, target]
    return expected


def expected_deconv(reference, pixels, layer, found):
    """Checks that `found` (a deconv JSON) names the layer's strongest activation (of its filter)
    and returns captum's NeuronDeconvolution of that neuron, scaled by the activation."""
    x = normalize(pixels)
    with torch.no_grad():
        output = x
        for module in list(reference.features)[: layer + 1]:
            output = module(output.clone())
    c, (row, col) = found["filter"], found["position"]
    assert output[0, c, row, col] == pytest.approx(found["activation"], rel=1e-5)
    truncated = nn.Sequential(*[nn.ReLU() if isinstance(m, nn.ReLU) else m
                                for m in list(reference.features)[: layer + 1]])
    unit = NeuronDeconvolution(truncated, truncated[layer]).attribute(x.clone().requires_grad_(),
                                                                      neuron_selector=(c, row, col))
    return output[0], found["activation"] * unit[0]

