"""``glazeish bench mimic``: does a generative model trained on cloaked images lose the artist's style?

The mimic's-view figures of :mod:`.measure` are a proxy (what one encode/decode round trip shows). This
module runs the real thing at CPU size: for every *version* of one artist's set (clean, cloaked, noised
at the same L∞ budget, imported from another tool, ...) it

1. encodes the full images with the TAEF2 encoder (the encoder the cloak attacks) and caches the latents;
2. trains a small rectified-flow (flow-matching) U-Net from scratch on random latent crops (horizontal
   flips), with the same architecture, steps and seed for every version — everything it learns comes
   from that version of the artist's images;
3. samples ``N`` latent crops (Euler steps from noise), decodes them with the TAEF2 decoder, and compares
   them with crops of the *clean* paintings by statistics of an encoder the cloak did not attack
   (TAESANA Gram / channel statistics), colour histograms, a gradient-magnitude texture histogram, and a
   classifier two-sample test (a ridge classifier on TAESANA channel statistics, cross-validated).

Every distance is a *set* distance (statistics averaged over the set, then compared), so it is 0 for a set
against itself. Confidence intervals are a bootstrap over units (one trained model: protection draw × training
seed) drawn with replacement, each unit with all its samples (the reference crops are held fixed). The
headline is ``distance(cloak-trained) / distance(clean-trained)`` next to the same ratio for same-budget noise.

Layout: results (small, to keep) go to ``OUT``: ``results.csv`` (long format), ``units.jsonl`` (per unit,
what the set distances need: :mod:`.units`), ``summary.csv`` and ``results.md`` (from those rows alone:
``glazeish bench mimic --report --out OUT`` recomputes them), ``training_curves.png``, ``samples_grid.png``,
``samples_<protection>.png`` and ``runs/<protection>/seed<k>/{losses.csv,metrics.json}``. Caches (protected PNGs, latents, checkpoints,
decoded samples) go to ``WORK`` (default ``OUT/work``; point it at a git-ignored folder). A finished
version (``metrics.json`` with the same settings and its samples in ``WORK``) is skipped; an unfinished
one resumes from its last checkpoint, bit-for-bit (the RNG state is checkpointed too).

This is a toy-scale model on a CPU. With real diffusers weights the same question is answered by
fine-tuning a LoRA of a full pipeline on each version (see :mod:`glazeish.bench.pipelines`).

The package, by concept: :mod:`.config` (the settings, the metrics' names), :mod:`.training` (the U-Net, its
training and sampling), :mod:`.stats` (statistics, set distances, C2ST), :mod:`.units` (the per-unit rows and the
distances of any multiset of units, the bootstrap's draws), :mod:`.run` (versions, caches, one training per
version, the metrics), :mod:`.report` (summary from the rows, figures, ``results.md``).
"""

from __future__ import annotations

from .config import METRIC_INFO, METRICS, NONE, Log, MimicConfig
from .report import grid_image, report_from_rows, summarise
from .run import MimicResult, MimicRun, Version, run_mimic
from .stats import (
    ImageStats,
    c2st_accuracy,
    colour_histogram,
    histogram_pixels,
    image_stats,
    set_distances,
    texture_histogram,
)
from .training import (
    LatentSet,
    ResBlock,
    TinyUNet,
    flow_loss,
    sample_flow,
    timestep_embedding,
    train,
)
from .units import UnitSet, read_units, resample_counts, unit_rows, write_units

__all__ = [
    "METRICS", "METRIC_INFO", "NONE", "ImageStats", "LatentSet", "Log", "MimicConfig", "MimicResult", "MimicRun",
    "ResBlock", "TinyUNet", "UnitSet", "Version", "c2st_accuracy", "colour_histogram", "flow_loss", "grid_image",
    "histogram_pixels", "image_stats", "read_units", "report_from_rows", "resample_counts", "run_mimic",
    "sample_flow", "set_distances", "summarise", "texture_histogram", "timestep_embedding", "train", "unit_rows",
    "write_units",
]
