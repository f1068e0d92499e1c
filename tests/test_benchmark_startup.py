"""benchmarks/startup: its RESULTS.md comes from its committed rows byte for byte, and the script still runs (one
run of each figure, this checkout alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from test_benchmark_reports import BENCH, suite

RESULTS = BENCH / "startup" / "RESULTS.md"


def test_startup_results_come_from_its_rows():
    m = suite("startup/startup.py")
    assert RESULTS.read_text().count("<!-- generated:") == 4
    assert m.report() == RESULTS.read_text()
    assert "python benchmarks/startup/startup.py --report" in m.__doc__


def test_startup_measures_this_checkout(tmp_path):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, str(BENCH / "startup" / "startup.py"), "--pairs", "1", "--out",
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=600, cwd=BENCH.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    kinds = [(r["kind"], r.get("version")) for r in rows]
    assert kinds.count(("help", "after")) == 2 and kinds.count(("help", "after, first call")) == 2
    imports = {r["stmt"]: r["imports_torch"] for r in rows if r["kind"] == "import"}
    assert imports == {"import glazeish.cli": False, "from glazeish.job import Cloaker": True, "import torch": True}
    assert [r["model"] for r in rows if r["kind"] == "load"] == ["taef2"]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "Machine: " in text and "| `glazeish protect --help` | after |" in text and "no earlier checkout" in text
