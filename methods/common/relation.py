"""Relation (pixel-to-pixel affinity) distillation and its per-node alternative, as used by SPEED.

Maps are pooled to an n x n grid of nodes; each node's vector (features, or class probabilities) is
l2-normalised; the relation matrix of an image is the row-wise softmax of the nodes' scaled cosine
similarities. The loss is the weighted mean over nodes (rows) of KL(A_teacher || A_student), with
padding nodes removed from rows and columns. Written against docs/methods/speed.md; the weighting, pooling and
node-validity rules are that specification's choices.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from methods.common.pixel_losses import kl_with_temperature, normalized_entropy


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


def _row_softmax_(similarity: Tensor, invalid_columns: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax over the valid columns of each row, written into ``similarity``, and its log-normaliser.
    In place because the matrices are large: a fresh one per operation costs more in page faults than the
    arithmetic. Invalid columns take the dtype's lowest value rather than -inf, so that a row with no
    valid column gives a finite (uniform) softmax instead of NaN."""
    similarity.masked_fill_(invalid_columns, torch.finfo(similarity.dtype).min)
    peak = similarity.amax(-1, keepdim=True)
    total = similarity.sub_(peak).exp_().sum(-1, keepdim=True)
    return similarity.div_(total), (peak + total.log()).squeeze(-1)


class _RelationKL(torch.autograd.Function):
    """Per-row KL(softmax(T^T T) || softmax(S^T S)) over valid columns for B x C x N node vectors S
    (student) and T (teacher, a target: no gradient), with the gradient written out.

    With P_s, P_t the row softmaxes and lse the log-normalisers, row i's KL is
    sum_j P_t(ij) (t_ij - s_ij) - lse_t(i) + lse_s(i) (the rows of P_t sum to one), and the first sum is
    t_i . (P_t T^T)_i - s_i . (P_t S^T)_i: two N x C products instead of N x N log-matrices. Its gradient
    with respect to the similarities is G = diag(g) (P_s - P_t), and with respect to S it is
    S (G + G^T). Only P_s and P_t (N x N) are kept for the backward, where autograd's chain of
    log-softmax, subtraction and product kept five such matrices and made as many passes over them.
    """

    @staticmethod
    def forward(ctx: Any, s: Tensor, t: Tensor, valid: Tensor) -> Tensor:
        invalid_columns = ~valid.unsqueeze(1)
        st, tt = s.transpose(1, 2), t.transpose(1, 2)  # B x N x C
        p_t, lse_t = _row_softmax_(torch.bmm(tt, t), invalid_columns)
        p_s, lse_s = _row_softmax_(torch.bmm(st, s), invalid_columns)
        cross = (torch.bmm(p_t, tt) * tt).sum(-1) - (torch.bmm(p_t, st) * st).sum(-1)
        ctx.save_for_backward(s, p_s, p_t)
        ctx.used = False
        return cross + (lse_s - lse_t)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        if ctx.used:
            raise RuntimeError("the relation KL's backward reuses its saved matrices and runs once per forward")
        ctx.used = True
        s, p_s, p_t = ctx.saved_tensors
        g = p_s.sub_(p_t).mul_(grad.unsqueeze(-1))  # in place, as in the forward
        return torch.bmm(s, g.transpose(1, 2)).add_(torch.bmm(s, g)), None, None


def relation_kl(student: Tensor, teacher: Tensor, valid: Tensor, weights: Tensor, tau: float) -> Tensor:
    """Weighted mean over rows of KL(A_teacher || A_student), averaged over the images with valid nodes.
    A is the row-wise softmax of cos(v_i, v_j) / tau over valid columns; the teacher is a target."""
    scale = tau ** -0.5  # s_i . s_j = cos / tau
    wide = torch.promote_types(student.dtype, torch.float32)  # float32 at least, float64 kept
    s = F.normalize(student.to(wide).flatten(2), dim=1) * scale
    t = F.normalize(teacher.detach().to(wide).flatten(2), dim=1) * scale
    with torch.autocast(s.device.type, enabled=False):  # the N x N softmaxes in float32 under any autocast
        kl = _RelationKL.apply(s, t, valid)
    return weighted_node_mean(kl, weights, valid)


def logit_relation_loss(student: Tensor, teacher: Tensor, valid: Tensor, weights: Tensor, tau: float,
                        temperature: float = 1.0) -> Tensor:
    """Relation distillation of predictions (node vectors are softmax(z / T))."""
    return relation_kl((student.float() / temperature).softmax(1), (teacher.float() / temperature).softmax(1),
                       valid, weights, tau)


def weighted_node_mean(values: Tensor, weights: Tensor, valid: Tensor) -> Tensor:
    """Mean over images (with valid nodes) of the weighted per-node ``values`` (B x N); zero, still in the
    graph, when no image has one. Written without a data-dependent branch (no host synchronisation)."""
    per_image = (values * weights).sum(1)
    has_nodes = valid.any(1)
    return (per_image * has_nodes).sum() / has_nodes.sum().clamp_min(1)


def pixel_feature_loss(student: Tensor, teacher: Tensor, valid: Tensor, weights: Tensor) -> Tensor:
    """Per-node 1 - cos(F_s, F_t), weighted."""
    cos = F.cosine_similarity(student.float().flatten(2), teacher.float().flatten(2), dim=1)
    return weighted_node_mean(1 - cos, weights, valid)


def pixel_logit_loss(student: Tensor, teacher: Tensor, valid: Tensor, weights: Tensor,
                     temperature: float = 1.0) -> Tensor:
    """Per-node T^2 KL(softmax(Z_t / T) || softmax(Z_s / T)), weighted."""
    return weighted_node_mean(kl_with_temperature(student, teacher, temperature).flatten(1), weights, valid)
