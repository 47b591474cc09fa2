"""lucid's and lucent's diversity penalty: how alike a batch's images look to a layer, as the
summed cosine similarity of their Gram matrices (style, in style transfer's sense) over all
pairs, divided by the batch size. Subtracted from the objective, it pushes the images apart."""
import torch
import torch.nn.functional as F


def grams(activations: torch.Tensor) -> torch.Tensor:
    """(n, c, h, w) -> (n, c, c) Gram matrices, each scaled to unit Frobenius norm."""
    flat = activations.flatten(2)
    return F.normalize(flat @ flat.transpose(1, 2), p=2, dim=(1, 2))


def gram_similarity(activations: torch.Tensor) -> torch.Tensor:
    """Sum over ordered pairs i != j of the cosine of their Gram matrices, / n."""
    g = grams(activations).flatten(1)
    cosines = g @ g.T
    n = len(g)
    return (cosines.sum() - cosines.diagonal().sum()) / n
