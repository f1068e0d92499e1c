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

from .._lazy import lazy_names

#: the public names and the module each comes from, imported on first use (importing the protections registers
#: the peers): ``glazeish bench --help`` imports this package and needs none of them
_HOMES = {
    "Bench": "harness", "BenchConfig": "harness", "CSV_FIELDS": "results", "MetricInfo": "results",
    "metric_info": "results", "PROTECTIONS": "protections", "BenchContext": "protections",
    "Protection": "protections", "make_protection": "protections", "register_protection": "protections",
}

__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES)
