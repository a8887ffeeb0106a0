"""Relation (pixel-to-pixel affinity) distillation and its per-node alternative, as used by SPEED.

Maps are pooled to an n x n grid of nodes; each node's vector (features, or class probabilities) is
l2-normalised; the relation matrix of an image is the row-wise softmax of the nodes' scaled cosine
similarities. The loss is the weighted mean over nodes (rows) of KL(A_teacher || A_student), with
padding nodes removed from rows and columns. Written against SPEED.md; the weighting, pooling and
node-validity rules are that specification's choices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.common.losses import kl_with_temperature, normalized_entropy


def pool_nodes(maps: Tensor, size: int) -> Tensor:
    """Adaptive average pooling to at most ``size`` x ``size`` nodes (never more nodes than the map
    has pixels along a side)."""
    return F.adaptive_avg_pool2d(maps.float(), (min(size, maps.shape[-2]), min(size, maps.shape[-1])))


def node_validity(ignore: Tensor, size: tuple[int, int]) -> Tensor:
    """B x N bool: a node is valid when more than half of the pixels it pools are not padding."""
    real = F.adaptive_avg_pool2d((~ignore).float().unsqueeze(1), size)
    return (real > 0.5).flatten(1)


def node_weights(teacher_logits: Tensor, valid: Tensor, entropy_weighting: bool) -> Tensor:
    """B x N row weights summing to one over each image's valid nodes: 1 - normalised teacher entropy
    (pseudo-entropy weighting), or uniform."""
    weights = valid.float()
    if entropy_weighting:
        weights = weights * (1 - normalized_entropy(teacher_logits).flatten(1))
    return weights / weights.sum(1, keepdim=True).clamp_min(1e-12)


def relation(vectors: Tensor, valid: Tensor, tau: float) -> Tensor:
    """Log relation matrices (B x N x N) of B x C x h x w node vectors: log softmax over columns of
    cos(v_i, v_j) / tau, invalid columns excluded."""
    v = F.normalize(vectors.flatten(2), dim=1)  # B x C x N
    similarity = torch.bmm(v.transpose(1, 2), v) / tau
    similarity.masked_fill_(~valid.unsqueeze(1), float("-inf"))  # in place: the division's output is ours
    return similarity.log_softmax(-1)


def relation_kl(student: Tensor, teacher: Tensor, valid: Tensor, weights: Tensor, tau: float) -> Tensor:
    """Weighted mean over rows of KL(A_teacher || A_student), averaged over the images with valid nodes."""
    log_s, log_t = relation(student, valid, tau), relation(teacher, valid, tau)
    kl = torch.where(valid.unsqueeze(1), log_t.exp() * (log_t - log_s), 0.0).sum(-1)
    return weighted_node_mean(kl, weights, valid)


def logit_relation_loss(student: Tensor, teacher: Tensor, valid: Tensor, weights: Tensor, tau: float,
                        temperature: float = 1.0) -> Tensor:
    """Relation distillation of predictions (node vectors are softmax(z / T))."""
    return relation_kl((student.float() / temperature).softmax(1), (teacher.float() / temperature).softmax(1),
                       valid, weights, tau)


def weighted_node_mean(values: Tensor, weights: Tensor, valid: Tensor) -> Tensor:
    """Mean over images (with valid nodes) of the weighted per-node ``values`` (B x N)."""
    per_image = (values * weights).sum(1)
    has_nodes = valid.any(1)
    return per_image[has_nodes].mean() if has_nodes.any() else per_image.sum() * 0


def pixel_feature_loss(student: Tensor, teacher: Tensor, valid: Tensor, weights: Tensor) -> Tensor:
    """Per-node 1 - cos(F_s, F_t), weighted."""
    cos = F.cosine_similarity(student.float().flatten(2), teacher.float().flatten(2), dim=1)
    return weighted_node_mean(1 - cos, weights, valid)


def pixel_logit_loss(student: Tensor, teacher: Tensor, valid: Tensor, weights: Tensor,
                     temperature: float = 1.0) -> Tensor:
    """Per-node T^2 KL(softmax(Z_t / T) || softmax(Z_s / T)), weighted."""
    return weighted_node_mean(kl_with_temperature(student, teacher, temperature).flatten(1), weights, valid)
