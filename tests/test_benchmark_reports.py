"""The benchmark suites' RESULTS.md files are regenerated from their committed rows, byte for byte: a report
that was edited by hand, or rows re-run without regenerating it, turns this red. No models are loaded."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def suite(rel: str):
    """Import a suite's script as a module (its folder and ``benchmarks/`` on the path, as when run)."""
    path = BENCH / rel
    sys.path[:0] = [str(path.parent), str(BENCH)]
    try:
        spec = importlib.util.spec_from_file_location(f"suite_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        del sys.path[:2]


def test_platforms_results_come_from_its_rows():
    m = suite("platforms/platforms.py")
    here = BENCH / "platforms"
    text = m.report(m.done_rows(here / "mosaic.jsonl"), m.done_rows(here / "survival.jsonl"),
                    m.done_rows(here / "speed.jsonl"))
    assert text == (here / "RESULTS.md").read_text()


def test_verdicts_results_come_from_its_rows(tmp_path):
    m = suite("verdicts/calibrate.py")
    (tmp_path / "rows.jsonl").write_text((BENCH / "verdicts" / "rows.jsonl").read_text())
    m.results(tmp_path)
    assert (tmp_path / "RESULTS.md").read_text() == (BENCH / "verdicts" / "RESULTS.md").read_text()


@pytest.mark.parametrize("rel", ["platforms/platforms.py", "verdicts/calibrate.py"])
def test_suites_say_how_to_run_them(rel):
    doc = suite(rel).__doc__
    assert f"python benchmarks/{rel}" in doc


@pytest.mark.parametrize("rel", ["figures_precision.py", "figures_sampled.py", "frontier.py", "memory_reuse.py",
                                 "shared_passes.py"])
def test_single_run_suites_tables_come_from_their_rows(rel):
    """``--report`` rebuilds every generated block of the suite's RESULTS.md from its ``results.jsonl``."""
    m = suite(rel)
    results = BENCH / rel.removesuffix(".py") / "RESULTS.md"
    assert results.read_text().count("<!-- generated:") >= 1
    assert m.report() == results.read_text()


@pytest.mark.parametrize("rel", ["figures_precision.py", "figures_sampled.py", "frontier.py", "memory_reuse.py",
                                 "shared_passes.py"])
def test_single_run_suites_say_how_to_report(rel):
    assert f"python benchmarks/{rel} --report" in suite(rel).__doc__


@pytest.mark.parametrize("sub", ["", "amortised", "amortised512", "figures", "laptop", "targets"])
def test_speed_tables_come_from_their_rows(sub):
    """``speed.py --report`` rebuilds each committed grid's RESULTS.md from the ``results.jsonl`` beside it."""
    m = suite("speed.py")
    folder = BENCH / "speed" / sub
    assert (folder / "RESULTS.md").read_text().count("<!-- generated:") >= 1
    assert m.report(folder) == (folder / "RESULTS.md").read_text()
    assert "python benchmarks/speed.py --report" in m.__doc__


def test_protect_default_results_come_from_its_rows():
    m = suite("protect_default/summarize.py")
    results = BENCH / "protect_default" / "RESULTS.md"
    assert results.read_text().count("<!-- generated:") == 3
    assert m.report() == results.read_text()
    assert "python benchmarks/protect_default/summarize.py --report" in m.__doc__


def test_amortised_tables_come_from_the_heldout_rows():
    """``train.py --report`` rebuilds the held-out tables of its RESULTS.md (no training, no model)."""
    m = suite("amortised/train.py")
    results = BENCH / "amortised" / "RESULTS.md"
    assert results.read_text().count("<!-- generated:") == 8
    assert m.report() == results.read_text()
    assert "python benchmarks/amortised/train.py --report" in m.__doc__


def test_mimic_summary_comes_from_its_rows(tmp_path):
    """``glazeish bench mimic --report --out benchmarks/mimic`` rebuilds ``summary.csv``, ``results.md`` and the
    generated block of RESULTS.md from the committed rows (``units.jsonl``, ``results.csv``, ``config.json``)
    alone: unchanged bytes. The rows stay small (no tensors)."""
    from glazeish.bench.mimic import report_from_rows

    here = BENCH / "mimic"
    for name in ("config.json", "units.jsonl", "results.csv", "RESULTS.md"):
        (tmp_path / name).write_bytes((here / name).read_bytes())
    report_from_rows(tmp_path)
    for name in ("summary.csv", "results.md", "RESULTS.md"):
        assert (tmp_path / name).read_bytes() == (here / name).read_bytes(), name
    assert (here / "RESULTS.md").read_text().count("<!-- generated: results.md -->") == 1
    assert "glazeish bench mimic --report --out benchmarks/mimic" in (here / "RESULTS.md").read_text()
    assert (here / "units.jsonl").stat().st_size < 400_000


def test_figures_cost_tables_come_from_its_rows():
    """``cost.py --report`` rebuilds the breakdown, the quick-vs-full tables and the verdict from
    ``breakdown.jsonl`` and ``quick.jsonl`` (no model)."""
    m = suite("figures_cost/cost.py")
    results = BENCH / "figures_cost" / "RESULTS.md"
    assert results.read_text().count("<!-- generated:") == 5
    assert m.report() == results.read_text()
    assert "python benchmarks/figures_cost/cost.py --report" in m.__doc__
