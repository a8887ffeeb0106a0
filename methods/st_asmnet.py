"""ST-ASMNet: online self-training driven attention-guided self-mimicking network.

Lyu, Zhao, Zhang, Cheng, Yang, IEEE TNNLS 36(10):19437-19451, 2025.

RE-IMPLEMENTATION FROM THE PAPER'S DESCRIPTION. Neither code nor the full text is public: this class
follows docs/methods/st_asmnet.md, and every inferred choice (augmentation mode, direction of
mimicking, layers, temperature, weights, threshold rule, EMA of buffers) is a parameter written into the
run record. Defaults are the specification's but two, which the specification leaves open as options
and the suite chose from its demo runs (results/FINDINGS.md): crop mode instead of erasing (the erased
view's CE keeps the labels of what it no longer shows) and the per-pixel pseudo-label mask instead of the
scalar q (which weights every pixel's argmax). `mode=drop`, `pseudo_weight=scalar` give the
specification's. `pseudo_views=augmented` (pseudo labels on the augmented view alone) is not the default
whatever its runs give: the specification does not name it.
The paper is fully supervised; using unlabeled images through the EMA teacher is the specification's
extension that makes it semi-supervised here.

One step, on the labeled and the unlabeled batch alike:
1. Student on the original images: logits z_o and channel-joint attention A_o (last encoder stage).
2. A_o (detached) guides the augmented view: crop a box around the most attended region (crop, targets
   RoI-aligned) or erase it (drop; at most half the image); unlabeled views also get the strong
   photometric augmentation. Student on it: z_a, A_a.
3. Self-mimicking towards the online ensemble z_ens = mean(z_o, z_a), A_ens likewise (detached).
4. EMA teacher (eval mode, original images): z_t, A_t distilled into both views with a ramp-up.
5. Unlabeled: pseudo labels argmax z_t on pixels with confidence >= pixel_threshold (pixel), or on
   every pixel weighted by q, the share of confident pixels (scalar); they supervise both views (or,
   with pseudo_views=augmented, the augmented view alone).
Labeled: CE(z_o, y) + CE(z_a, y') + L_sm + L_ema; unlabeled: L_pl + L_sm + L_ema; total = labeled +
lambda_u unlabeled. The EMA update follows every optimizer step; inference uses the student alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.method import Batch, Context, Method, Step, register
from benchmark.settings import setting
from methods.common.attention import (attention_boxes, crop_resize, erase_region, joint_attention,
                                      normalised_attention, scale_boxes)
from methods.common.ema import ema_momentum, ema_update, frozen_copy
from methods.common.pixel_losses import kl_from_log_probs, masked_cross_entropy


@dataclass
class View:
    """A network's outputs on one view: logits, attention, and log softmax(logits / T) computed once for
    every KL term the view enters."""

    logits: Tensor
    attention: Tensor
    log_probs: Tensor

    def rows(self, rows: slice) -> View:
        return View(self.logits[rows], self.attention[rows], self.log_probs[rows])

    def detach(self) -> View:
        return View(self.logits.detach(), self.attention.detach(), self.log_probs.detach())


@register("st_asmnet")
class STASMNet(Method):
    """ST-ASMNet (TNNLS 2025), re-implemented from its description (no code or full text public)."""

    summary = "attention-guided erasing/cropping, online-ensemble self-mimicking and an EMA teacher"
    paper = "Lyu et al., IEEE TNNLS 36(10), 2025"
    fidelity = "re-implemented from the paper's description (no code or full text)"

    @dataclass
    class Params:
        mode: Literal["drop", "crop"] = setting(
            "crop", "attention-guided augmentation: erase or crop (specification: drop; crop chosen from runs)")
        layers: Literal["last", "last2"] = setting("last", "CJA from the last encoder stage, or the last two")
        drop_threshold: tuple[float, float] = setting((0.5, 0.8), "drop: per-image theta ~ U(range)")
        erase_cap: float = setting(0.5, "drop: largest erased share of the image")
        crop_threshold: tuple[float, float] = setting((0.4, 0.6), "crop: per-image theta_c ~ U(range)")
        crop_margin: float = setting(0.1, "crop: box padding, as a share of the box size per side")
        strong_unlabeled: bool = setting(True, "also apply the strong photometric view to augmented unlabeled "
                                               "images")
        direction: Literal["ensemble", "original_to_augmented", "symmetric"] = setting(
            "ensemble", "self-mimicking target: the two views' mean, the original view, or each other")
        temperature: float = setting(3.0, "T of the KL terms")
        lambda_kl: float = setting(1.0, "weight of KL terms (per-pixel KL averaged over pixels and classes)")
        lambda_at: float = setting(0.25, "weight of attention MSE terms")
        ema_max: float = setting(0.999, "teacher EMA a = min(1 - 1/(t + 1), ema_max), t from 0, after each step")
        ema_buffers: bool = setting(True, "also average BatchNorm statistics into the (eval-mode) teacher")
        ramp_iters: int = setting(1000, "t_r of the teacher ramp exp(-5 (1 - t/t_r)^2)")
        tau: float = setting(0.968, "confidence threshold of credible pseudo labels")
        pseudo_weight: Literal["scalar", "pixel"] = setting(
            "pixel", "weight pseudo labels by q (share of confident pixels) or mask pixels below pixel_threshold "
                     "(specification: scalar; pixel chosen from runs)")
        pixel_threshold: float = setting(0.95, "confidence of the per-pixel pseudo-label mask")
        pseudo_views: Literal["both", "augmented"] = setting(
            "both", "views the pseudo-label CE supervises: original and augmented (specification), or the "
                    "augmented alone (the original view is the teacher's own input, unperturbed)")
        lambda_u: float = setting(1.0, "weight of the unlabeled loss")

    def __init__(self, ctx: Context, params: Params) -> None:
        super().__init__(ctx, params)
        self.model = ctx.build_model()
        self.teacher = frozen_copy(self.model)
        self.register_buffer("fill", self.model.mean.detach().clone(), persistent=False)

    def after_step(self, step: Step) -> None:
        """theta' <- a theta' + (1 - a) theta with a = min(1 - 1/(t + 1), ema_max)."""
        ema_update(self.teacher, self.network("model"), ema_momentum(step.iteration, self.params.ema_max),
                   buffers=self.params.ema_buffers)

    def ramp(self, iteration: int) -> float:
        """exp(-5 (1 - t / t_r)^2) up to t_r, then 1."""
        if iteration >= self.params.ramp_iters:
            return 1.0
        return math.exp(-5 * (1 - iteration / self.params.ramp_iters) ** 2)

    def augment(self, images: Tensor, attention: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """The attention-guided view of ``images`` and, in crop mode, the crop boxes (in pixels)."""
        p, n, size = self.params, images.shape[0], tuple(images.shape[-2:])
        a = normalised_attention(attention, size)
        low, high = p.drop_threshold if p.mode == "drop" else p.crop_threshold
        theta = low + (high - low) * torch.rand(n, generator=gen, device=images.device)
        if p.mode == "drop":
            region = erase_region(a, theta, p.erase_cap).unsqueeze(1)
            return torch.where(region, self.fill.to(images.dtype).expand_as(images), images), None
        boxes = attention_boxes(a, theta, p.crop_margin)
        return crop_resize(images, boxes, size), boxes

    @staticmethod
    def align(maps: Tensor, boxes: Tensor | None, image_size: tuple[int, int], nearest: bool = False) -> Tensor:
        """Maps of the original view (N x C x h x w, or N x h x w labels) brought onto the augmented view:
        unchanged in drop mode, the crop box resampled in crop mode (RoI align, or nearest for labels)."""
        if boxes is None:
            return maps
        stacked = maps.unsqueeze(1) if maps.dim() == 3 else maps
        out = crop_resize(stacked, scale_boxes(boxes, image_size, tuple(stacked.shape[-2:])),
                          tuple(stacked.shape[-2:]), nearest=nearest)
        return out[:, 0] if maps.dim() == 3 else out

    def view(self, logits: Tensor, attention: Tensor) -> View:
        """A view's outputs with its log-probabilities at the KL temperature."""
        return View(logits, attention, F.log_softmax(logits.float() / self.params.temperature, dim=1))

    def aligned(self, view: View, boxes: Tensor | None, size: tuple[int, int]) -> View:
        """``view`` brought onto the augmented view (itself in drop mode)."""
        if boxes is None:
            return view
        return self.view(self.align(view.logits, boxes, size), self.align(view.attention, boxes, size))

    def terms(self, student: View, target: View, valid: Tensor) -> Tensor:
        """lambda_kl KL_T(target || student), averaged over valid pixels and classes, + lambda_at MSE of
        the attention maps."""
        p = self.params
        kl = kl_from_log_probs(student.log_probs, target.log_probs) * p.temperature ** 2
        kl = (kl * valid).sum() / valid.sum().clamp_min(1) / student.logits.shape[1]
        return p.lambda_kl * kl + p.lambda_at * F.mse_loss(student.attention.float(), target.attention.float())

    def mimic(self, original: View, augmented: View, teacher: View, boxes: Tensor | None, valid_o: Tensor,
              valid_a: Tensor, ramp: float) -> tuple[Tensor, Tensor]:
        """(L_sm, L_ema) of one batch part. Self-mimicking compares the views on the augmented view's
        pixels (the original view RoI-aligned in crop mode, gradients flowing through the alignment)."""
        p, size = self.params, tuple(original.logits.shape[-2:])
        on_a = self.aligned(original, boxes, size)
        if p.direction == "ensemble":
            mean_logits = (on_a.logits + augmented.logits) / 2
            target = self.view(mean_logits, (on_a.attention + augmented.attention) / 2).detach()
            sm = self.terms(on_a, target, valid_a) + self.terms(augmented, target, valid_a)
        elif p.direction == "original_to_augmented":
            sm = self.terms(augmented, on_a.detach(), valid_a)
        else:
            sm = self.terms(augmented, on_a.detach(), valid_a) + self.terms(on_a, augmented.detach(), valid_a)
        teacher_a = self.aligned(teacher, boxes, size)
        ema = self.terms(original, teacher, valid_o) + self.terms(augmented, teacher_a, valid_a)
        return sm, ramp * ema

    def pseudo_labels(self, teacher_logits: Tensor, ignore: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(argmax labels, per-pixel weights, q per image). q is the image's share of non-padding pixels
        with confidence >= tau and weights every non-padding pixel ('scalar'), or the weight is the
        per-pixel mask confidence >= pixel_threshold ('pixel')."""
        conf, label = teacher_logits.detach().float().softmax(1).max(1)
        real = (~ignore).float()
        q = ((conf >= self.params.tau).float() * real).sum((1, 2)) / real.sum((1, 2)).clamp_min(1)
        if self.params.pseudo_weight == "pixel":
            return label, (conf >= self.params.pixel_threshold).float() * real, q
        return label, q.view(-1, 1, 1) * real, q

    def training_step(self, batch: Batch, step: Step) -> dict[str, Tensor | float]:
        p, gen, x, u = self.params, step.generator, batch.labeled, batch.unlabeled
        n_x, size = len(x.image), tuple(x.image.shape[-2:])
        images = torch.cat([x.image, u.image])
        out = self.model(images, features=True)
        original = self.view(out.logits, joint_attention(out.stages, p.layers))
        augmented_images, boxes = self.augment(images, original.attention, gen)
        if p.strong_unlabeled:
            augmented_images = torch.cat([augmented_images[:n_x], self.ctx.strong(augmented_images[n_x:], gen)])
        out = self.model(augmented_images, features=True)
        augmented = self.view(out.logits, joint_attention(out.stages, p.layers))
        out = self.ctx.no_grad_forward(self.teacher, images, features=True)
        teacher = self.view(out.logits, joint_attention(out.stages, p.layers))

        box_x, box_u = (boxes[:n_x], boxes[n_x:]) if boxes is not None else (None, None)
        mask_a = self.align(x.mask, box_x, size, nearest=True)
        ignore_a = self.align(u.ignore, box_u, size, nearest=True)
        valid_o = torch.cat([x.mask != self.ctx.ignore_index, ~u.ignore]).float()
        valid_a = torch.cat([mask_a != self.ctx.ignore_index, ~ignore_a]).float()
        ramp = self.ramp(step.iteration)
        labeled_rows, unlabeled_rows = slice(0, n_x), slice(n_x, None)
        sm_x, ema_x = self.mimic(original.rows(labeled_rows), augmented.rows(labeled_rows),
                                 teacher.rows(labeled_rows), box_x, valid_o[labeled_rows], valid_a[labeled_rows],
                                 ramp)
        sm_u, ema_u = self.mimic(original.rows(unlabeled_rows), augmented.rows(unlabeled_rows),
                                 teacher.rows(unlabeled_rows), box_u, valid_o[unlabeled_rows],
                                 valid_a[unlabeled_rows], ramp)

        loss_x = (self.ctx.supervised_loss(original.logits[:n_x], x.mask)
                  + self.ctx.supervised_loss(augmented.logits[:n_x], mask_a))
        pseudo, weight, q = self.pseudo_labels(teacher.logits[n_x:], u.ignore)
        loss_pl = masked_cross_entropy(augmented.logits[n_x:], self.align(pseudo, box_u, size, nearest=True),
                                       self.align(weight, box_u, size, nearest=True), ~ignore_a)
        if p.pseudo_views == "both":
            loss_pl = loss_pl + masked_cross_entropy(original.logits[n_x:], pseudo, weight, ~u.ignore)
        labeled = loss_x + sm_x + ema_x
        unlabeled = loss_pl + sm_u + ema_u
        return {"loss": labeled + p.lambda_u * unlabeled, "loss_x": loss_x, "loss_pl": loss_pl,
                "loss_sm": sm_x + sm_u, "loss_ema": ema_x + ema_u, "q": q.mean(), "ramp": ramp}
