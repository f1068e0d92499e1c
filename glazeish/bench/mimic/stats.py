"""Measuring a set of images against the clean paintings: per-image statistics (TAESANA Gram / channel statistics,
colour and texture histograms), set distances and the classifier two-sample test."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...metrics import StyleFeatures, gram

__all__ = ["ImageStats", "c2st_accuracy", "colour_histogram", "histogram_pixels", "image_stats", "set_distances",
           "texture_histogram"]

@dataclass
class ImageStats:
    """Per-image statistics of a set of ``N`` images (all tensors have ``N`` first).

    ``grams``/``means``/``stds``: per TAESANA layer, ``N×C×C`` / ``N×C`` / ``N×C``; ``colour``: ``N×512``
    (8×8×8 RGB histogram); ``texture``: ``N×16`` (gradient-magnitude histogram); ``features``: ``N×D``
    (channel means and log-stds of every layer, the two-sample classifier's input).
    """

    grams: list[torch.Tensor]
    means: list[torch.Tensor]
    stds: list[torch.Tensor]
    colour: torch.Tensor
    texture: torch.Tensor
    features: torch.Tensor

    def __len__(self) -> int:
        return self.colour.shape[0]

    def take(self, idx: torch.Tensor) -> "ImageStats":
        return ImageStats([g[idx] for g in self.grams], [m[idx] for m in self.means], [s[idx] for s in self.stds],
                          self.colour[idx], self.texture[idx], self.features[idx])

    @staticmethod
    def cat(parts: list["ImageStats"]) -> "ImageStats":
        n = len(parts[0].grams)
        return ImageStats([torch.cat([p.grams[i] for p in parts]) for i in range(n)],
                          [torch.cat([p.means[i] for p in parts]) for i in range(n)],
                          [torch.cat([p.stds[i] for p in parts]) for i in range(n)],
                          torch.cat([p.colour for p in parts]), torch.cat([p.texture for p in parts]),
                          torch.cat([p.features for p in parts]))


def histogram_pixels(height: int, width: int) -> tuple[int, int]:
    """How many pixels the colour and the texture histogram of one ``height×width`` image count (the texture
    one counts forward differences: one row and one column fewer)."""
    return height * width, (height - 1) * (width - 1)


def colour_histogram(x: torch.Tensor, levels: int = 8) -> torch.Tensor:
    """``B×3×H×W`` in [0, 1] -> ``B×levels³`` joint RGB histogram, each row summing to 1."""
    q = (x.clamp(0, 1) * levels).long().clamp_max(levels - 1)
    idx = (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]
    out = torch.stack([torch.bincount(i.flatten(), minlength=levels**3) for i in idx]).float()
    return out / out.sum(1, keepdim=True)


def texture_histogram(x: torch.Tensor, bins: int = 16, top: float = 0.4) -> torch.Tensor:
    """``B×3×H×W`` in [0, 1] -> ``B×bins`` histogram of luminance gradient magnitude on ``[0, top]`` (the
    last bin takes everything above): how much fine brushwork / grain / flat area an image has."""
    y = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).float()
    gx = y[:, :-1, 1:] - y[:, :-1, :-1]
    gy = y[:, 1:, :-1] - y[:, :-1, :-1]
    mag = (gx.square() + gy.square()).sqrt()
    idx = (mag / top * bins).long().clamp_max(bins - 1)
    out = torch.stack([torch.bincount(i.flatten(), minlength=bins) for i in idx]).float()
    return out / out.sum(1, keepdim=True)


@torch.no_grad()
def image_stats(images: torch.Tensor, style: StyleFeatures, batch: int = 16) -> ImageStats:
    """Statistics of ``images`` (``N×3×H×W`` in [0, 1], H and W multiples of 32)."""
    parts = []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].float()
        feats = style(x)
        means = [f.mean((2, 3)) for f in feats]
        stds = [f.std((2, 3)) for f in feats]
        features = torch.cat([torch.cat([m, s.clamp_min(1e-6).log()], 1) for m, s in zip(means, stds)], 1)
        parts.append(ImageStats([gram(f) for f in feats], means, stds, colour_histogram(x), texture_histogram(x),
                                features))
    return ImageStats.cat(parts)


def set_distances(a: ImageStats, b: ImageStats) -> dict[str, float]:
    """Distances between two sets, from their averaged statistics: ``style`` (the set version of
    :func:`glazeish.metrics.style_distance`: per layer, MSE of mean Gram + of mean channel means + of mean
    channel stds, summed), ``colour`` and ``texture`` (total-variation distance of the mean histograms)."""
    style = 0.0
    for ga, gb, ma, mb, sa, sb in zip(a.grams, b.grams, a.means, b.means, a.stds, b.stds):
        style += float((ga.mean(0) - gb.mean(0)).square().mean())
        style += float((ma.mean(0) - mb.mean(0)).square().mean())
        style += float((sa.mean(0) - sb.mean(0)).square().mean())
    return {
        "style": style,
        "colour": 0.5 * float((a.colour.mean(0) - b.colour.mean(0)).abs().sum()),
        "texture": 0.5 * float((a.texture.mean(0) - b.texture.mean(0)).abs().sum()),
    }


def c2st_accuracy(fa: torch.Tensor, fb: torch.Tensor, folds: int = 5, seed: int = 0, ridge: float = 1.0) -> float:
    """Classifier two-sample test: cross-validated accuracy of a ridge classifier telling ``fa`` (``N×D``)
    from ``fb`` (``M×D``), on ``min(N, M)`` rows of each (balanced). 0.5 = the sets cannot be told apart.

    The folds pair row ``i`` of ``fa`` with row ``i`` of ``fb`` (same fold), and ties score one half, so two
    identical sets give exactly 0.5. The classifier is fitted in its dual form (features may outnumber rows)
    on features standardised with the training fold's statistics; ``ridge`` is scaled by the row count.
    """
    n = min(len(fa), len(fb))
    fa, fb = fa[:n].double(), fb[:n].double()
    k = max(2, min(folds, n))
    gen = torch.Generator().manual_seed(seed)
    fold = torch.empty(n, dtype=torch.long)
    fold[torch.randperm(n, generator=gen)] = torch.arange(n) % k
    score = 0.0
    for f in range(k):
        tr, te = fold != f, fold == f
        x = torch.cat([fa[tr], fb[tr]])
        y = torch.cat([-torch.ones(int(tr.sum())), torch.ones(int(tr.sum()))]).double()
        mu, sd = x.mean(0), x.std(0, correction=0).clamp_min(1e-8)
        xs = (x - mu) / sd
        gram_m = xs @ xs.T + ridge * len(xs) * torch.eye(len(xs), dtype=xs.dtype)
        alpha = torch.linalg.solve(gram_m, y - y.mean())
        w = xs.T @ alpha
        for rows, label in ((fa[te], -1.0), (fb[te], 1.0)):
            s = ((rows - mu) / sd) @ w + y.mean()
            score += float((torch.sign(s) == label).double().sum() + 0.5 * (s == 0).double().sum())
    return score / (2 * n)
