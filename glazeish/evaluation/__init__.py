"""The evaluation layer: the only code that computes figures for an (original, cloaked) pair, and the only
table of what they mean in words.

* :mod:`.measure` — :class:`Evaluator`: visibility, latent displacement per encoder, the mimic's view, the
  benchmark's extra metrics, tiled in flat memory;
* :mod:`.baselines` — the noise every cloak is judged against (same PSNR, and same L∞);
* :mod:`.assess` — :func:`assess`: a cloak next to its baselines, before and after purifications;
* :mod:`.figures` — the typed results (:class:`Figures`, :class:`Comparison`, :class:`VersionFigures`);
* :mod:`.verdicts` — thresholds and words (:func:`judge`, :func:`one_line`).
"""

from .assess import FIGURE_MODES, assess, build_purifications, linf_levels, load_pair
from .baselines import baselines, mse_levels, rescaled_to_mse, same_psnr_noise, uniform_noise
from .figures import Comparison, Figures, Purified, Summary, VersionFigures, jsonable
from .measure import Evaluator, Request
from .verdicts import Verdict, judge, one_line

__all__ = [
    "FIGURE_MODES", "assess", "baselines", "build_purifications", "linf_levels", "load_pair", "mse_levels", "rescaled_to_mse",
    "same_psnr_noise", "uniform_noise", "Comparison", "Figures", "Purified", "Summary", "VersionFigures", "jsonable", "Evaluator", "Request", "Verdict", "judge",
    "one_line",
]
