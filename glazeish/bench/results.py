"""The benchmark's results file: its columns, its metrics and how they read, and a resumable writer.

One long-format CSV (``results.csv``), one row per (image, protection, purification, metric):

* ``value`` — the protection's figure after the purification, measured against the equally purified original;
* ``noise`` — the same for Gaussian noise with the protection's own MSE (same PSNR), the headline baseline;
* ``uniform`` — the same for uniform noise of the protection's L∞ budget;
* ``clean`` — what the purification alone does: the purified original against the original;
* ``effect`` = ``value − noise``; ``retained`` = effect after the purification ÷ effect without it (the one
  definition of :func:`glazeish.evaluation.figures.retained`), empty where there was no effect to keep.

Shared by the harness (which writes it) and the report (which reads it), so neither imports the other.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CSV_NAME = "results.csv"
ENV_NAME = "environment.json"
CSV_FIELDS = ["image", "folder", "width", "height", "protection", "eps", "purification", "metric",
              "value", "clean", "noise", "uniform", "effect", "retained"]
NONE = "none"


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric: ``damage_up`` is True when a larger value means more damage/visibility."""

    name: str
    label: str
    unit: str
    damage_up: bool
    group: str  # visibility, latent, mimic or pipeline


METRICS = [
    MetricInfo("psnr", "PSNR vs original", "dB", False, "visibility"),
    MetricInfo("ssim", "SSIM vs original", "", False, "visibility"),
    MetricInfo("flip", "FLIP error vs original", "", True, "visibility"),
    MetricInfo("ms_ssim", "MS-SSIM vs original", "", False, "visibility"),
    MetricInfo("linf", "L-inf of delta", "/255", True, "visibility"),
    MetricInfo("rms", "RMS of delta", "/255", True, "visibility"),
    MetricInfo("view_psnr", "mimic view vs clean mimic view", "dB", False, "mimic"),
    MetricInfo("view_ssim", "mimic view SSIM vs clean mimic view", "", False, "mimic"),
    MetricInfo("copy_psnr", "mimic view vs original artwork", "dB", False, "mimic"),
    MetricInfo("copy_ssim", "mimic view SSIM vs original artwork", "", False, "mimic"),
    MetricInfo("style", "style distance to clean mimic view", "", True, "mimic"),
    MetricInfo("copy_style", "style distance to original artwork", "", True, "mimic"),
    MetricInfo("decoy_corr", "correlation of mimic-view change with decoy", "", True, "mimic"),
    MetricInfo("decoy_psnr", "mimic view vs decoy pattern", "dB", True, "mimic"),
]


def metric_info(name: str) -> MetricInfo:
    """Look up a metric by its CSV name (``latent:<enc>`` included; unknown names get a neutral entry)."""
    for m in METRICS:
        if m.name == name:
            return m
    if name.startswith("latent:"):
        return MetricInfo(name, f"latent displacement ({name.split(':', 1)[1]})", "", True, "latent")
    if name.startswith(("img2img@", "lora:")):
        return MetricInfo(name, name, "", not name.endswith(("psnr", "ssim", "psnr_orig")), "pipeline")
    return MetricInfo(name, name, "", True, "other")


def fmt_cell(v: float | None) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return f"{v:.6g}"


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows of a results CSV as dicts of strings; a torn last line (a killed run) is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is not None and list(reader.fieldnames) != CSV_FIELDS:
        raise ValueError(f"{path}: not a glazeish bench CSV (columns {reader.fieldnames})")
    return [r for r in reader if r.get("retained") is not None]


def to_float(s: str | None) -> float:
    """CSV cell -> float (empty -> nan; 'inf' stays inf)."""
    if s is None or s == "":
        return float("nan")
    return float(s)


class ResultsWriter:
    """Appends row groups to the CSV atomically enough: one write + flush + fsync per group."""

    def __init__(self, path: Path):
        self.path = path
        rows = read_rows(path)
        # rewrite without a torn tail so that appends start on a clean line
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.rows = rows

    def have(self) -> dict[tuple[str, str, str], set[str]]:
        """(image, protection, purification) -> the metrics already written for it."""
        out: dict[tuple[str, str, str], set[str]] = {}
        for r in self.rows:
            out.setdefault((r["image"], r["protection"], r["purification"]), set()).add(r["metric"])
        return out

    def write(self, rows: list[dict]) -> None:
        """Append ``rows``, leaving out metrics already written for their group (a re-run adding metrics)."""
        have = self.have()
        rows = [r for r in rows if r["metric"] not in have.get((r["image"], r["protection"], r["purification"]), ())]
        buf = io.StringIO()
        w = csv.DictWriter(buf, CSV_FIELDS)
        w.writerows(rows)
        with open(self.path, "a", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        self.rows.extend({k: str(v) for k, v in r.items()} for r in rows)
