"""The protection benchmark: does a cloak work, how visible is it, does it survive counter-measures?

* :mod:`.protections` — what is compared (registered by name: ``none``, ``random``, ``glazeish-low/default/high``,
  ``external``, and wrappers such as ``same-psnr:<p>``);
* :mod:`.peers` — the published attacks as their authors ran them (``photoguard-encoder-style``,
  ``mist-textural-style``) and ``psnr-matched:<p>``, a protection at glazeish-default's PSNR;
* :mod:`.harness` — the resumable run: :func:`glazeish.evaluation.assess` per image and protection, flattened
  into a long-format CSV;
* :mod:`.results` — the CSV's columns and metrics (shared by the harness and the report);
* :mod:`.report` — tables with 95% confidence intervals, plain-words summary, plots;
* :mod:`.pipelines` — optional full diffusers pipelines (img2img, LoRA fine-tune);
* :mod:`.mimic` — training a small generative model on each version of an artist's set;
* :mod:`.cli` — ``glazeish bench run|report|mimic``.
"""

from . import peers  # noqa: F401  (registers the peers' protections)
from .harness import Bench, BenchConfig
from .protections import PROTECTIONS, BenchContext, Protection, make_protection, register_protection
from .results import CSV_FIELDS, MetricInfo, metric_info

__all__ = [
    "CSV_FIELDS", "Bench", "BenchConfig", "MetricInfo", "metric_info", "PROTECTIONS", "BenchContext", "Protection",
    "make_protection", "register_protection",
]
