"""EntropyMix (SPEED, Lu et al., TCSVT 2024): a mixed training image assembled cell by cell from the
strong views whose predictions are the most (or least) uncertain there.

The authors published no code; this follows docs/methods/speed.md, where every choice below
the paper's abstract is ours and a parameter. The crop is tiled into a G x G grid; for every image and
cell the candidates are K aligned strong views (own s1, own s2, partner s1', partner s2'), each scored
by its mean normalised prediction entropy over the cell's non-padding pixels; the rule picks a view per
cell, and the mixed image, its pseudo labels, confidences and padding map are copied from the chosen
views (the pseudo labels from the weak view of the chosen view's image: all views of an image are
pixel-aligned). It replaces CutMix in one line: ``mixed = entropy_mix(model, u, mix, ctx, gen)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.method import Context, Unlabeled
from methods.common.pixel_losses import normalized_entropy
from methods.common.pseudo import Pseudo

RULES = ("max", "min", "sample")


def cell_index(height: int, width: int, grid: int, device: torch.device) -> Tensor:
    """H x W map of each pixel's cell (row-major, 0 .. grid**2 - 1), cells bounded at multiples of 1/grid
    of the crop, so the same tiling applies at any resolution."""
    rows = torch.arange(height, device=device) * grid // height
    cols = torch.arange(width, device=device) * grid // width
    return rows.view(-1, 1) * grid + cols.view(1, -1)


def cell_scores(entropy: Tensor, valid: Tensor, grid: int) -> tuple[Tensor, Tensor]:
    """Mean of ``entropy`` (B x K x H x W) over each cell's ``valid`` pixels: (B x K x G*G scores,
    B x K x G*G bool, True where the cell has at least one valid pixel)."""
    cells = cell_index(*entropy.shape[-2:], grid, entropy.device).flatten()
    onehot = F.one_hot(cells, grid * grid).to(entropy.dtype)  # HW x G*G
    weights = valid.to(entropy.dtype).flatten(2)
    sums = (entropy.flatten(2) * weights) @ onehot
    counts = weights @ onehot
    return sums / counts.clamp_min(1), counts > 0


def choose(scores: Tensor, present: Tensor, rule: str, temperature: float, gen: torch.Generator) -> Tensor:
    """Index of the chosen view per cell (B x G*G) from B x K x G*G scores; a view without valid pixels
    in a cell is never chosen (unless no view has any: then view 0)."""
    if rule == "max":
        return scores.masked_fill(~present, float("-inf")).argmax(1)
    if rule == "min":
        return scores.masked_fill(~present, float("inf")).argmin(1)
    logits = (scores / temperature).masked_fill(~present, float("-inf"))
    logits = torch.where(present.any(1, keepdim=True), logits, torch.zeros_like(logits))
    probs = logits.softmax(1).permute(0, 2, 1).reshape(-1, scores.shape[1])
    return torch.multinomial(probs, 1, generator=gen).view(scores.shape[0], -1)


def source_map(choice: Tensor, height: int, width: int, grid: int) -> Tensor:
    """B x H x W index of the chosen view of every pixel, from the B x G*G choices."""
    cells = cell_index(height, width, grid, choice.device)
    return choice.gather(1, cells.flatten().expand(choice.shape[0], -1)).view(-1, height, width)


def gather_views(views: Tensor, source: Tensor) -> Tensor:
    """Per pixel, the value of the chosen view: ``views`` is B x K x ... x H x W (or B x K x H x W),
    ``source`` B x H x W."""
    index = source.unsqueeze(1)
    if views.dim() == 5:
        index = index.unsqueeze(2).expand(-1, 1, views.shape[2], -1, -1)
    return views.gather(1, index).squeeze(1)


@dataclass
class EntropyMixed:
    """The result of EntropyMix."""

    image: Tensor
    """N x 3 x H x W mixed image."""
    pseudo: Pseudo
    """Pseudo label, confidence and padding map of the mixed image (from the weak views)."""
    partner: Tensor
    """N x H x W bool: True where the pixel comes from the partner image (U'), else from its own."""
    choice: Tensor
    """N x G*G index of the chosen view per cell."""
    weak_features: Tensor | None
    """2N x A x h x w teacher decoder features of the weak views when requested."""
    weak_logits_low: Tensor | None
    """2N x C x h x w teacher logits before upsampling when requested."""


class EntropyMix:
    """EntropyMix with its parameters; ``__call__`` runs the teacher pass and assembles the mix."""

    def __init__(self, grid: int = 4, candidates: int = 4, rule: str = "max", temperature: float = 0.1,
                 p: float = 1.0) -> None:
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}")
        if candidates not in (2, 4):
            raise ValueError("candidates must be 4 (own and partner views) or 2 (own views)")
        self.grid, self.candidates, self.rule, self.temperature, self.p = grid, candidates, rule, temperature, p

    def select(self, entropy: Tensor, valid: Tensor, gen: torch.Generator) -> Tensor:
        """Chosen view per cell (B x G*G) from B x K x H x W entropies and validity; with probability
        1 - p an image keeps view 0 everywhere."""
        scores, present = cell_scores(entropy, valid, self.grid)
        choice = choose(scores, present, self.rule, self.temperature, gen)
        keep = torch.rand(choice.shape[0], generator=gen, device=choice.device) >= self.p
        return choice.masked_fill(keep.view(-1, 1), 0)

    @torch.no_grad()
    def __call__(self, model: nn.Module, u: Unlabeled, mix: Unlabeled, ctx: Context, gen: torch.Generator,
                 features: bool = False) -> EntropyMixed:
        """Make the K candidate strong views (two of U, then two of U'), run the teacher (eval mode, no
        grad) on the weak views of U and U' and the candidates in one batch, and assemble the mixed images
        and their pseudo labels."""
        n, k = len(u.image), self.candidates
        sources = (u, u, mix, mix)[:k]  # the image behind each candidate view
        strong = [ctx.strong(source.image, gen) for source in sources]
        views = torch.stack(strong, 1)  # N x K x 3 x H x W
        out = ctx.no_grad_forward(model, torch.cat([u.image, mix.image, *strong]), features=features)
        logits = out.logits if features else out
        weak, strong_logits = logits[:2 * n], logits[2 * n:]
        entropy = normalized_entropy(strong_logits).view(k, n, *logits.shape[-2:]).transpose(0, 1)
        pads = torch.stack([source.ignore for source in sources], 1)
        choice = self.select(entropy, ~pads, gen)
        source = source_map(choice, *u.image.shape[-2:], self.grid)
        partner = source >= 2
        own, other = Pseudo.from_logits(weak[:n], u.ignore), Pseudo.from_logits(weak[n:], mix.ignore)
        return EntropyMixed(image=gather_views(views, source), pseudo=own.paste(other, partner),
                            partner=partner, choice=choice,
                            weak_features=out.decoder[:2 * n] if features else None,
                            weak_logits_low=out.logits_low[:2 * n] if features else None)


def compose_low(maps: Tensor, choice: Tensor, grid: int) -> Tensor:
    """Teacher maps of the weak views (2N x C x h x w: own then partner) composed cell by cell like the
    mixed image: each cell takes the own or the partner map as its chosen view does."""
    n = choice.shape[0]
    partner = source_map(choice, *maps.shape[-2:], grid) >= 2
    return torch.where(partner.unsqueeze(1), maps[n:], maps[:n])
