from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from glazeish.config import PRESETS

#: the default preset's L∞ bound (its masked budget reaches it on busy texture only)
EPS = PRESETS["default"].eps_levels

from glazeish.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def batch(tmp_path, small_painting):
    """A folder with two good images (one RGBA, non-square) and two bad files."""
    d = small_painting.parent
    rgba = Image.open(small_painting).convert("RGBA").crop((0, 0, 72, 40))
    rgba.putpixel((0, 0), (1, 2, 3, 0))
    rgba.save(d / "sticker.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (d / "empty.jpg").write_bytes(b"")
    return d


def test_protect_folder_json_and_bad_files(batch, tmp_path, models_dir):
    before = {p.name: p.read_bytes() for p in batch.iterdir()}
    out = tmp_path / "out"
    r = run("protect", batch, "-o", out, "--models", models_dir, "--steps", "2", "--json")
    assert r.exit_code == 1  # some files failed
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert sorted(os.path.basename(row["input"]) for row in rows) == ["painting.png", "sticker.png"]
    err_lines = [l for l in r.stderr.splitlines() if l.startswith("glazeish: error")]
    assert len(err_lines) == 2 and any("broken.png" in l for l in err_lines) and any("empty.jpg" in l for l in err_lines)
    for row in rows:
        src = Image.open(row["input"])
        dst = Image.open(row["output"])
        assert dst.size == src.size and row["output"].endswith(".protected.png")
        assert row["eps_levels"] == EPS and row["steps"] == 2 and row["encoder"] == "taef2"
        assert row["precision"] in ("fp32", "bf16")
        f = row["figures"]
        assert f["linf"] <= EPS and set(f["before"]) == {"cloak", "noise", "uniform", "clean_copy_psnr"}
        assert row["image_seconds"] >= row["seconds"] + row["figure_seconds"] > 0
        assert f["before"]["cloak"]["view_psnr"] is not None and set(f["before"]["cloak"]["latent"]) == {"taef2"}
        assert set(f["purified"]) == {"jpeg75"}  # the default survival figure
        v = row["verdict"]  # the words a person reads, and their keys for a program
        assert v["visibility"] and v["protection"] and set(v["survival"]) == {"jpeg75"}
        assert v["sentences"][0].startswith("Visibility:")
        diff = np.abs(np.asarray(dst.convert(src.mode), int) - np.asarray(src, int))
        assert diff[..., :3].max() <= EPS
    sticker = Image.open(out / "sticker.protected.png")
    assert sticker.mode == "RGBA" and sticker.getpixel((0, 0)) == (1, 2, 3, 0)  # transparent pixel untouched
    sticker_row = next(r for r in rows if r["input"].endswith("sticker.png"))
    assert sticker_row["figures"]["visible"] < 1  # visibility over the visible pixels only
    assert {p.name: p.read_bytes() for p in batch.iterdir()} == before  # inputs untouched


def test_existing_outputs_are_kept_unless_overwrite(small_painting, tmp_path, models_dir):
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "painting.protected.png"
    dest.write_bytes(b"precious")
    r = run("protect", small_painting, "-o", out, "--models", models_dir, "--steps", "1", "--no-eval")
    assert r.exit_code == 0 and "exists" in r.stderr and dest.read_bytes() == b"precious"
    r = run("protect", small_painting, "-o", out, "--models", models_dir, "--steps", "1", "--no-eval", "--overwrite")
    assert r.exit_code == 0 and Image.open(dest).size == Image.open(small_painting).size


def test_json_without_eval_skips_the_figures(small_painting, tmp_path, models_dir):
    r = run("protect", small_painting, "-o", tmp_path, "--models", models_dir, "--steps", "1", "--no-eval", "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert "figures" not in row and row["figure_seconds"] == 0 and row["image_seconds"] >= row["seconds"] > 0


def test_robust_flags_map_onto_the_preset():
    from glazeish.cli import _robust
    from glazeish.config import PRESETS, ProtectConfig
    from glazeish.transforms import DEFAULT_ROBUST

    assert ProtectConfig(robust=_robust(None, None)).robust == PRESETS["default"].robust == "jpeg,identity"
    assert ProtectConfig(intensity="low", robust=_robust(None, None)).robust == PRESETS["low"].robust
    assert ProtectConfig(robust=_robust(False, None)).robust == ""
    assert ProtectConfig(intensity="low", robust=_robust(False, None)).robust == ""
    assert ProtectConfig(intensity="low", robust=_robust(True, None)).robust == DEFAULT_ROBUST
    assert ProtectConfig(robust=_robust(None, "jpeg,blur")).robust == "jpeg,blur"


def test_output_never_replaces_an_input(tmp_path, small_painting, models_dir):
    d = small_painting.parent
    victim = d / "painting.protected.png"
    Image.open(small_painting).save(victim)
    data = victim.read_bytes()
    r = run("protect", victim, small_painting, "-o", d, "--models", models_dir, "--steps", "1", "--overwrite", "--no-eval")
    assert r.exit_code == 1 and "would overwrite an input" in r.stderr
    assert victim.read_bytes() == data


def test_same_seed_same_output(small_painting, tmp_path, models_dir):
    outs = []
    for i in range(2):
        r = run("protect", small_painting, "-o", tmp_path / f"o{i}", "--models", models_dir, "--steps", "2",
                "--seed", "5", "--no-eval", "--precision", "fp32")
        assert r.exit_code == 0, r.output
        outs.append(np.asarray(Image.open(tmp_path / f"o{i}" / "painting.protected.png")))
    assert np.array_equal(*outs)


@pytest.mark.parametrize(
    "args,phrase",
    [
        (["--intensity", "extreme"], "unknown intensity"),
        (["--objective", "nope"], "unknown objective"),
        (["--encoder", "nope"], "unknown encoder"),
        (["--format", "gif"], "format must be one of"),
        (["--data-mining", "whatever"], "whatever"),
        (["--transforms", "jpeg", "--no-robust"], "contradict"),
        (["--transforms", "jpeg,nope"], "unknown transform"),
        (["--steps", "100000"], "steps must be a whole number from 0 to 1000"),
        (["--eps", "65"], "eps must be between 0 and 64"),
        (["--encoder", "taef2*0"], "encoder weight must be a positive number"),
        (["--quality", "101"], "quality must be a whole number from 1 to 100"),
        (["--format", "webp", "--quality", "0"], "quality must be a whole number from 1 to 100"),
        (["--max-pixels", "0"], "max pixels must be at least 1"),
        (["--device", "cuda:7"], "device"),
        (["--precision", "fp8"], "precision must be one of"),
        (["--purify", "nope"], "unknown purification"),
        (["--models", "/nonexistent-folder"], "does not exist"),
        (["--seed", "1e23"], "Invalid value for '--seed'"),
        (["--seed", str(2**64)], "seed must be a whole number"),
        (["--steps", "six"], "Invalid value for '--steps'"),
        (["--eot-reference", "purified"], "EOT reference must be clean or transformed"),
        (["--platform", "myspace"], "unknown platform 'myspace'; known: instagram"),
        (["--platform", "x", "--transforms", "jpeg"], "drop --transforms/--robust"),
        (["--max-side", "10"], "max side must be a whole number of px, at least 16"),
        (["--no-such-option"], "No such option"),
        (["--format", "jpeg", "--creator", "c" * 70_000], "a JPEG holds at most"),
    ],
)
def test_bad_options_one_line(small_painting, tmp_path, models_dir, args, phrase):
    r = run("protect", small_painting, "-o", tmp_path / "o", "--models", models_dir, *args)
    assert r.exit_code == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and phrase in lines[0]


def test_missing_models_is_one_clear_line(small_painting, tmp_path, monkeypatch):
    monkeypatch.setenv("GLAZEISH_OFFLINE", "1")
    monkeypatch.setenv("GLAZEISH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GLAZEISH_MODELS", raising=False)
    (tmp_path / "nomodels").mkdir()
    r = run("protect", small_painting, "-o", tmp_path / "o", "--models", tmp_path / "nomodels")
    assert r.exit_code == 2
    assert "taef2_encoder.pth" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir(small_painting, tmp_path, models_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    r = run("protect", small_painting, "-o", ro, "--models", models_dir)
    assert r.exit_code == 2 and "not writable" in r.stderr


def test_output_dir_that_is_a_file(small_painting, tmp_path, models_dir):
    f = tmp_path / "afile"
    f.write_text("x")
    r = run("protect", small_painting, "-o", f, "--models", models_dir)
    assert r.exit_code == 2 and "not writable" in r.stderr


def test_lossy_format_warns(small_painting, tmp_path, models_dir):
    r = run("protect", small_painting, "-o", tmp_path / "o", "--models", models_dir, "--steps", "1", "--format", "jpeg", "--no-eval")
    assert r.exit_code == 0 and "lossy" in r.stderr
    assert Image.open(tmp_path / "o" / "painting.protected.jpg").format == "JPEG"


def test_encoders_command(models_dir):
    r = run("encoders", "--models", models_dir, "--json")
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["taef2"]["present"] and rows["taesana"]["present"]


def test_console_script_help_and_ensemble(small_painting, tmp_path, models_dir):
    """The installed entry point works as a separate process (what a user types)."""
    exe = [sys.executable, "-m", "glazeish"]
    h = subprocess.run(exe + ["protect", "--help"], capture_output=True, text=True, timeout=120)
    assert h.returncode == 0 and "--intensity" in h.stdout
    r = subprocess.run(
        exe + ["protect", str(small_painting), "-o", str(tmp_path / "o"), "--models", str(models_dir),
               "--encoder", "taef2,taesana*0.5", "--steps", "1", "--json", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    f = row["figures"]
    assert row["encoder"] == "taef2,taesana*0.5" and f["encoders"] == ["taef2", "taesana"]
    assert f["mimic_model"] == "taef2" and set(f["before"]["cloak"]["latent"]) == {"taef2", "taesana"}
    assert "taef2" in h.stdout and "mimic" in h.stdout  # --help lists what is registered


def _png(path, rgb, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **kw)
    return path


def test_colliding_outputs_are_renamed_and_said_never_skipped(small_painting, tmp_path, models_dir):
    """x/art.png and y/art.png (-r keeps the folders), a.png and a.jpg (numbered, with a note): every input is
    cloaked, each into its own file, and --overwrite never lets one input's cloak replace another's."""
    rgb = np.asarray(Image.open(small_painting))[:40, :56]
    d = tmp_path / "batch"
    _png(d / "x" / "art.png", rgb)
    _png(d / "y" / "art.png", rgb[::-1].copy())
    _png(d / "a.png", rgb)
    _png(d / "a.jpg", rgb[:, ::-1].copy(), quality=95)
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    for attempt in range(2):  # the second run: everything exists; with --overwrite, each output is redone
        r = run("protect", d, "-r", "-o", out, "--models", models_dir, "--steps", "1", "--no-eval", "--json",
                *(["--overwrite"] if attempt else []))
        assert r.exit_code == 0, r.output
        rows = {Path(row["input"]).relative_to(d).as_posix(): Path(row["output"]).relative_to(out).as_posix()
                for row in map(json.loads, r.stdout.splitlines())}
        assert rows == {"a.jpg": "a.protected.png", "a.png": "a-2.protected.png", "x/art.png": "x/art.protected.png",
                        "y/art.png": "y/art.protected.png"}
        notes = [line for line in r.stderr.splitlines() if "note:" in line]
        assert notes == [f"glazeish: note: {d / 'a.png'}: written as {out / 'a-2.protected.png'} ({d / 'a.jpg'} "
                         f"already makes {out / 'a.protected.png'})"]
    for src, dst in rows.items():  # each output is the cloak of its own input
        a = np.asarray(Image.open(d / src).convert("RGB"), int)
        b = np.asarray(Image.open(out / dst).convert("RGB"), int)
        assert np.abs(a - b).max() <= EPS
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before


def test_a_second_run_into_the_same_folder_is_refused(small_painting, tmp_path, models_dir):
    from glazeish.job import lock_outdir

    out = tmp_path / "out"
    out.mkdir()
    with lock_outdir(out):  # another run holds the folder
        r = run("protect", small_painting, "-o", out, "--models", models_dir, "--steps", "1", "--no-eval")
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        f"glazeish: error: another glazeish run is writing to {out}; wait for it or choose another --out"]
    assert not (out / "painting.protected.png").exists()


def test_lossy_output_figures_describe_the_file_written(small_painting, tmp_path, models_dir):
    """--format jpeg --quality 1: the PSNR and L-inf in the row are those of the file on disk (once reported
    as 37.7 dB for a file that measured 16.4 dB)."""
    r = run("protect", small_painting, "-o", tmp_path / "o", "--models", models_dir, "--steps", "1", "--format",
            "jpeg", "--quality", "1", "--json", "--purify", "none")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.strip().splitlines()[-1])
    a = np.asarray(Image.open(small_painting).convert("RGB"), float)
    b = np.asarray(Image.open(row["output"]).convert("RGB"), float)
    psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
    assert row["figures"]["before"]["cloak"]["psnr"] == pytest.approx(psnr, abs=0.05) and psnr < 30
    assert row["figures"]["linf"] == int(np.abs(a - b).max())


def test_fill_chroma_changes_the_fills_colour_not_their_lightness(tmp_path, models_dir):
    img = np.full((64, 64, 3), (200, 140, 80), np.uint8)  # an orange cel with an ink stroke
    img[28:36, 8:56] = 20
    Image.fromarray(img).save(tmp_path / "cel.png")
    r = run("protect", tmp_path / "cel.png", "-o", tmp_path / "out", "--models", models_dir, "--steps", "2",
            "--no-eval", "--precision", "fp32", "--fill-chroma")
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(tmp_path / "out" / "cel.protected.png")).astype(float)
    change = out[:16] - img[:16]  # far from the stroke: all fill
    luma = change @ np.array([0.2126, 0.7152, 0.0722])
    assert np.abs(change).max() >= 1  # the fill does change...
    assert np.abs(luma).max() <= 0.75  # ...in colour: its lightness moves by 8-bit rounding at most


def test_quick_figures_leave_out_the_uniform_baseline_and_say_the_same_words(small_painting, tmp_path, models_dir):
    """Quick is the default (benchmarks/figures_cost: the same words on every shared image); full adds the
    same-L∞ baseline and leaves every figure quick reports as it was."""
    out = {}
    for mode in ("full", None):
        chosen = ["--figures", mode] if mode else []
        r = run("protect", small_painting, "-o", tmp_path / str(mode), "--models", models_dir, "--steps", "1",
                "--json", "--precision", "fp32", *chosen)
        assert r.exit_code == 0, r.output
        out[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    full, quick = (out[m]["figures"] for m in ("full", None))
    assert quick["before"]["uniform"] is None and full["before"]["uniform"] is not None
    assert quick["summary"]["view_gap"] == full["summary"]["view_gap"]
    assert quick["before"]["cloak"] == full["before"]["cloak"] | {"flip": None}
    cloaked = tmp_path / "None" / "painting.protected.png"
    r = run("check", small_painting, cloaked, "--models", models_dir, "--figures", "most")
    assert r.exit_code != 0 and "figures must be one of" in r.output
    # check --eps sets the same-L∞ baseline: it asks for the full figures, and refuses an explicit quick
    r = run("check", small_painting, cloaked, "--models", models_dir, "--eps", "3", "--json", "--purify", "none")
    assert r.exit_code == 0, r.output
    checked = json.loads(r.stdout)
    assert checked["before"]["uniform"] is not None and checked["eps_levels"] == 3
    r = run("check", small_painting, cloaked, "--models", models_dir, "--eps", "3", "--figures", "quick")
    assert r.exit_code == 2 and "--figures quick leaves out" in r.output
