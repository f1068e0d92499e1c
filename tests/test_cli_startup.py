"""The command line starts without the library: every ``--help`` (and ``version``) runs without importing torch,
diffusers, gradio, numpy or Pillow, and says the same bytes whether its registry words were kept or gathered
afresh. Checked in fresh interpreters, where sys.modules shows what a command really imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "gradio", "numpy", "PIL", "kornia")
#: every help the top-level app and its own commands print, and ``version``
LIGHT = (["--help"], [], ["protect", "--help"], ["check", "--help"], ["encoders", "--help"], ["ui", "--help"],
         ["version", "--help"], ["version"], ["bench", "--help"], ["bench", "run", "--help"],
         ["bench", "report", "--help"], ["bench", "mimic", "--help"])

# invoke each command line in turn in this interpreter; print what they wrote and which heavy modules came in
_INVOKE = """
import json, sys
from typer.testing import CliRunner
import glazeish.cli
outputs = [CliRunner().invoke(glazeish.cli.app, args).output for args in json.loads(sys.argv[1])]
print(json.dumps({"outputs": outputs, "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


def _invoke(cache: Path, *commands: list[str]) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-c", _INVOKE, json.dumps(commands), json.dumps(HEAVY)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_help_imports_no_torch_and_says_the_same_as_gathered(tmp_path):
    """The first call gathers the registries' words (and imports torch for it, once); every later help reads
    them back and imports nothing heavy, with the same bytes."""
    first = _invoke(tmp_path, *LIGHT)
    assert "torch" in first["heavy"]  # gathered: the words come from the live registries
    again = _invoke(tmp_path, *LIGHT)
    assert again["heavy"] == []
    assert again["outputs"] == first["outputs"]
    protect_help = again["outputs"][2]
    assert "--intensity" in protect_help and "mimic-away" in protect_help and "taef2" in protect_help
    assert "photoguard-encoder-style" in again["outputs"][9]  # bench run's help names the peers (a plug-in)


def test_console_entry_point_help_imports_no_torch(tmp_path):
    """``python -m glazeish protect --help`` as a user runs it: the same check through ``__main__``."""
    code = ("import runpy, sys\nsys.argv = ['glazeish', 'protect', '--help']\ntry:\n"
            "    runpy.run_module('glazeish', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    for _ in range(2):  # the first call keeps the words
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--intensity" in done.stdout and done.stdout.splitlines()[-1] == "HEAVY []"


def test_import_glazeish_is_light_and_its_public_names_load_on_use(tmp_path):
    code = ("import sys, glazeish\nlight = 'torch' not in sys.modules\n"
            "from glazeish import Protector, PRESETS\nimport glazeish.config\n"
            "print(light, 'torch' in sys.modules, glazeish.PGD.__module__, glazeish.attack.__name__,\n"
            "      PRESETS is glazeish.config.PRESETS, sorted(glazeish.__all__) == sorted(set(glazeish.__all__)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "True", "glazeish.attack", "glazeish.attack", "True", "True"]


def test_help_facts_are_the_registries_and_follow_the_source(tmp_path, monkeypatch):
    """Kept facts are used only for the source they were gathered from; a damaged file is gathered again."""
    from glazeish import helpfacts
    from glazeish.config import PRESETS
    from glazeish.objectives import OBJECTIVES

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    facts = helpfacts.help_facts()
    assert facts == helpfacts.gather() and facts["objectives"] == OBJECTIVES.help()
    assert list(facts["presets"]) == list(PRESETS) and facts["presets"]["default"]["steps"] == PRESETS["default"].steps
    kept = json.loads(helpfacts.cache_file().read_text())
    assert kept["source"] == helpfacts.source_digest()

    def no_gathering() -> dict:
        raise AssertionError("gathered although the kept facts are for this source")

    with monkeypatch.context() as m:
        m.setattr(helpfacts, "gather", no_gathering)
        assert helpfacts.help_facts() == facts
        m.setattr(helpfacts, "source_digest", lambda: "another source")
        with pytest.raises(AssertionError, match="gathered"):
            helpfacts.help_facts()
    helpfacts.cache_file().write_text("{not json")
    assert helpfacts.help_facts() == facts
    assert json.loads(helpfacts.cache_file().read_text())["facts"] == facts
    # no source to tell versions apart (a zip, bytecode only): gathered every time, never kept
    helpfacts.cache_file().unlink()
    monkeypatch.setattr(helpfacts, "PACKAGE", tmp_path / "no-source")
    assert helpfacts.help_facts() == facts and not helpfacts.cache_file().exists()


def test_bench_is_listed_without_importing_it_and_runs_as_before(tmp_path):
    """``bench`` is listed by the top-level help from its name and help alone; used, it is the group that
    ``add_typer`` builds (its own help, its commands)."""
    listing, bench_help, run_help = _invoke(tmp_path, ["--help"], ["bench", "--help"], ["bench", "run", "--help"])[
        "outputs"]
    assert "bench" in listing and "Benchmarks: protections x purifications" in listing
    assert "Benchmarks: protections x purifications" in bench_help and "mimic" in bench_help
    assert "--protections" in run_help and "photoguard-encoder-style" in run_help
