"""Every benchmark suite still runs: its main path on a 64 px image with a step or two (through the script's own
command line, as a person runs it), or its report from the committed rows, byte for byte. A broken suite turns
CI red here instead of on the day someone re-runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import crop_rgb
from test_benchmark_reports import BENCH, suite


def run(script: str, *args: str, timeout: float = 120) -> str:
    """Run ``benchmarks/<script>`` with ``args`` in a fresh interpreter; its stdout (fails on a non-zero exit)."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=BENCH.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def tiny_painting(tmp_path, painting_path, models_dir) -> Path:
    """A 64×64 crop of a shared painting, in a folder named like its kind (``paintings/``)."""
    p = tmp_path / "paintings" / "tiny.png"
    p.parent.mkdir()
    Image.fromarray(crop_rgb(painting_path, 64, 64, 200, 200)).save(p)
    return p


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cloak_search_cloaks_and_measures_a_64px_image(tmp_path, tiny_painting):
    out = tmp_path / "rows.jsonl"
    run("cloak_search/search.py", "--images", str(tiny_painting), "--candidates", "random-s2", "--out", str(out),
        "--scratch", str(tmp_path / "cloaks"), "--threads", "1")
    (row,) = rows(out)
    assert (row["kind"], row["candidate"], row["width"]) == ("paintings", "random-s2", 64)
    assert row["psnr"] > 30 and row["gap"] is not None and row["transfer"] > 0
    assert (tmp_path / "cloaks" / "random-s2" / "full" / "tiny.png").exists()
    summary = run("cloak_search/search.py", "--summary", str(out), "--per-image", "random-s2")
    assert "| random-s2 | paintings | 1 |" in summary and "| grain |" in summary


def test_adaptive_cloaks_purifies_and_measures_a_64px_image(tmp_path, tiny_painting):
    out = tmp_path / "rows.jsonl"
    run("adaptive/adaptive.py", "--images", str(tiny_painting), "--crop", "0", "--candidates", "default",
        "--impress-steps", "1", "--out", str(out))
    (row,) = rows(out)
    assert row["candidate"] == "default" and "impresspp_kept" in row and "jpeg75_kept" in row
    summary = run("adaptive/adaptive.py", "--summary", "--out", str(out), "--candidates", "default")
    assert "| default | paintings | 1 |" in summary


def test_amortised_training_takes_a_step_on_64px_crops(tmp_path, models_dir, painting_path):
    run("amortised/train.py", "--steps", "1", "--batch", "1", "--crop", "64", "--procedural", "0",
        "--models-dir", str(models_dir), "--out", str(tmp_path / "p.png"), "--log", str(tmp_path / "train.log"))
    assert (tmp_path / "p.png").exists()
    assert (tmp_path / "train.log").read_text().splitlines()[1].startswith("1\t")  # one step logged


def test_amortised_network_training_takes_a_step_and_notes_its_sha256(tmp_path, models_dir):
    run("amortised/train.py", "--network", "--steps", "1", "--batch", "1", "--crop", "64", "--procedural", "0",
        "--models-dir", str(models_dir), "--out", str(tmp_path / "g.safetensors"), "--log", str(tmp_path / "n.log"))
    from glazeish.generator import Generator
    from glazeish.weights import sha256_of

    note = json.loads((tmp_path / "g.json").read_text())
    assert note["sha256"] == sha256_of(tmp_path / "g.safetensors")
    assert note["command"].startswith("python benchmarks/amortised/train.py --network --steps 1")
    assert Generator.load(tmp_path / "g.safetensors", note["sha256"]).period == 64
    assert (tmp_path / "n.log").read_text().splitlines()[1].startswith("1\t")


def test_figures_cost_times_the_parts_and_compares_quick_on_a_64px_image(tmp_path, tiny_painting):
    """Both parts on one 64 px crop, one repeat: every pass is named by its image, the views after the figures
    and the second cloak's clean passes come from what the figures kept, and quick passes 6 images to full's 8
    with the same words."""
    where = ("--out", str(tmp_path / "out"), "--scratch", str(tmp_path / "scratch"))
    run("figures_cost/cost.py", "--part", "breakdown", "--breakdown-images", str(tiny_painting), "--repeats", "1",
        *where, timeout=300)
    run("figures_cost/cost.py", "--part", "quick", "--images", str(tiny_painting), *where, timeout=300)
    by = {r["setting"]: r for r in rows(tmp_path / "out" / "breakdown.jsonl")}
    passes = {s: sum(v["n"] for k, v in r["parts"].items() if k.startswith("encoder")) for s, r in by.items()}
    assert passes == {"full": 8, "views_fresh": 2, "views_memo": 0, "cached_second": 6, "quick": 6}
    assert not any("other image" in k for r in by.values() for k in r["parts"])
    (row,) = rows(tmp_path / "out" / "quick.jsonl")
    assert (row["full"]["passes"], row["quick"]["passes"]) == (8, 6) and row["quick"]["words"] == row["full"]["words"]
    text = (tmp_path / "out" / "RESULTS.md").read_text()
    assert text.count("<!-- generated:") == 5 and "| **total** |" in text and "Quick says the same words" in text


@pytest.mark.parametrize("rel", ["cloak_search/search.py", "adaptive/adaptive.py"])
def test_results_tables_come_from_the_committed_rows(rel):
    """``--report`` rebuilds every generated table of the suite's RESULTS.md from its rows: unchanged bytes."""
    m = suite(rel)
    results = (BENCH / rel).parent / "RESULTS.md"
    assert results.read_text().count("<!-- generated:") >= 5
    assert m.report() == results.read_text()


def test_protect_default_tables_come_from_its_rows():
    text = run("protect_default/summarize.py", str(BENCH / "protect_default" / "results.jsonl"))
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) > 20
    results = (BENCH / "protect_default" / "RESULTS.md").read_text().splitlines()
    assert [line for line in results if line.startswith("|")] == table


@pytest.mark.parametrize("script", ["figures_precision.py", "figures_sampled.py", "frontier.py", "memory_reuse.py",
                                    "shared_passes.py",
                                    "speed.py", "preset_examples.py", "ray/throughput.py"])
def test_suites_without_a_small_mode_at_least_start(script):
    """These measure full-size images or time whole runs (minutes): their command line is parsed, their imports
    resolve."""
    assert "usage:" in run(script, "--help", timeout=60)
