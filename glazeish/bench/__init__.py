"""The protection benchmark: does a cloak work, how visible is it, does it survive counter-measures?

* :mod:`.protections` — what is compared (registered by name: ``none``, ``random``, ``photoguard-encoder``,
  ``mist-textural``, ``glazeish-low/default/high``, ``external``);
* :mod:`.measure` — the metrics, in the measurement model of a latent diffusion model (mimic view D(E(x)));
* :mod:`.harness` — the resumable run writing a long-format CSV;
* :mod:`.report` — tables with 95% confidence intervals, plain-words summary, plots;
* :mod:`.pipelines` — optional full diffusers pipelines (img2img, LoRA fine-tune);
* :mod:`.cli` — ``glazeish bench run|report``.
"""

from .harness import CSV_FIELDS, Bench, BenchConfig
from .measure import Measurer, MetricInfo, metric_info
from .protections import PROTECTIONS, BenchContext, Protection, make_protection, register_protection

__all__ = [
    "CSV_FIELDS", "Bench", "BenchConfig", "Measurer", "MetricInfo", "metric_info", "PROTECTIONS",
    "BenchContext", "Protection", "make_protection", "register_protection",
]
