"""The README's headline figures, recomputed from the committed benchmark rows.

Each test reads a rows file under ``benchmarks/``, recomputes one published figure the way the text
describes it, formats it as the text does and checks that the text says exactly that — so a re-run that
changes the rows, or an edit that changes the words, turns this red until both agree again. No models,
no images: only the committed CSV/JSONL/log files (a test skips, saying which, if its file is missing).
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def text(path: Path) -> str:
    """A Markdown file with its line breaks and runs of spaces folded, so a figure may wrap."""
    return " ".join(path.read_text(encoding="utf-8").split())


README = text(ROOT / "README.md")


def rows_file(rel: str) -> Path:
    path = BENCH / rel
    if not path.exists():
        pytest.skip(f"benchmarks/{rel} is not in this checkout")
    return path


def jsonl(rel: str) -> list[dict]:
    return [json.loads(line) for line in rows_file(rel).read_text().splitlines() if line.strip()]


def mean_min_max(rows: list[dict], key: str) -> tuple[float, float, float]:
    vals = [r[key] for r in rows]
    return statistics.mean(vals), min(vals), max(vals)


def pick(rows: list[dict], candidate: str, kind: str, images: set[str] | None = None) -> list[dict]:
    out = [r for r in rows if r["candidate"] == candidate and r["kind"] == kind and not r.get("crop")
           and (images is None or r["image"] in images)]
    assert out, f"no rows for {candidate} on {kind}"
    return out


KINDS = {"paintings": "12 paintings, 512×512", "flat": "6 flat-colour drawings, 5 sizes",
         "line": "4 line drawings on paper"}


@pytest.mark.parametrize("kind", KINDS)
def test_how_well_it_works_table(kind):
    """The first table: the default (and the previous default) on all 22 images, from cloak_search's rows."""
    rows = jsonl("cloak_search/results.jsonl")
    d, prev = pick(rows, "default", kind), pick(rows, "previous-default", kind)
    psnr, view, gap, jpeg = (mean_min_max(d, k) for k in ("psnr", "view_psnr", "gap", "jpeg_view_psnr"))
    p = [statistics.mean(r[k] for r in prev) for k in ("psnr", "view_psnr", "gap")]
    row = (f"| {KINDS[kind]} | {psnr[0]:.1f} dB ({psnr[1]:.1f}) | {view[0]:.1f} dB ({view[1]:.1f}–{view[2]:.1f}) "
           f"| {gap[0]:.1f} dB ({gap[1]:.1f}) | {jpeg[0]:.1f} dB ({jpeg[1]:.1f}–{jpeg[2]:.1f}) "
           f"| {p[0]:.1f} / {p[1]:.1f} / {p[2]:.1f} dB |")
    assert row in README


def test_default_on_the_images_the_search_never_screened():
    """The default was screened on crops of the images in screen.jsonl; the README names how many and
    gives its gap on the others."""
    screened = {r["image"] for r in jsonl("cloak_search/screen.jsonl")}
    rows = jsonl("cloak_search/results.jsonl")
    assert f"first on 256² crops of {len(screened)} shared images" in README
    unseen = {r["image"] for r in rows} - screened
    parts = []
    for kind, label in (("paintings", "paintings"), ("flat", "flat-colour drawings"), ("line", "line drawings")):
        d = pick(rows, "default", kind, unseen)
        parts.append(f"{statistics.mean(r['gap'] for r in d):.1f} dB on {len(d)} {label}")
    assert f"on the other {len(unseen)}," in README
    assert f"{parts[0]}, {parts[1]} and {parts[2]}" in README


@pytest.mark.parametrize("preset,candidate,rows_rel,gap_note", [
    ("low", "proposal-low", "cloak_search/presets.jsonl", ""),
    ("default", "default", "cloak_search/results.jsonl", ""),
    ("fast", "learned-s4", "amortised/heldout.jsonl", " (held-out images)"),
    ("high", "proposal-high", "cloak_search/presets.jsonl", ""),
])
def test_presets_table(preset, candidate, rows_rel, gap_note):
    """The presets table: PSNR, gap and JPEG view on paintings / flat drawings."""
    rows = jsonl(rows_rel)
    m = {kind: {k: statistics.mean(r[k] for r in pick(rows, candidate, kind))
                for k in ("psnr", "gap", "jpeg_view_psnr")} for kind in ("paintings", "flat")}
    cells = (f"| {m['paintings']['psnr']:.1f} / {m['flat']['psnr']:.1f} dB "
             f"| {m['paintings']['gap']:.1f} / {m['flat']['gap']:.1f} dB{gap_note} "
             f"| view PSNR {m['paintings']['jpeg_view_psnr']:.1f} / {m['flat']['jpeg_view_psnr']:.1f} dB |")
    line = next((row for row in README.split("| `")[1:] if row.startswith(f"{preset}` |")), "")
    assert cells in line, f"`{preset}` row of the presets table"


def test_jpeg_kept_on_paintings():
    """Share of the default's mimic-view advantage kept after JPEG q75 (ratio of mean effects), from the
    protection grid: 56 % over all 22 images, 40 % on paintings alone — each quoted where it belongs."""
    with rows_file("protection/results.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["protection"] == "glazeish-default" and r["metric"] == "view_psnr"]

    def kept(folder: str | None) -> str:
        effect = {pur: {r["image"]: float(r["effect"]) for r in rows
                        if r["purification"] == pur and folder in (None, r["folder"])} for pur in ("none", "jpeg75")}
        keys = effect["jpeg75"].keys() & effect["none"].keys()
        return f"{sum(effect['jpeg75'][k] for k in keys) / sum(effect['none'][k] for k in keys):.0%}".replace("%", " %")

    adaptive = text(BENCH / "adaptive" / "RESULTS.md")
    assert f"default at full size {kept('paintings')} (all 12 paintings" in adaptive
    index = text(BENCH / "RESULTS.md")
    assert (f"{kept(None)} of that advantage kept after JPEG q75 over all 22 images — "
            f"paintings alone {kept('paintings')}") in index


def speed_rows() -> list[dict]:
    return [r for r in jsonl("speed/results.jsonl") if isinstance(r.get("seconds"), float)]


def test_taesana_time():
    secs = [r["seconds"] for r in speed_rows() if r["encoder"] == "taesana" and r["width"] == r["height"] == 512]
    assert f"takes {min(secs):.1f}–{max(secs):.1f} s per 512² cloak" in README


def test_memory_grows_with_size():
    peak = {r["size"]: r["peak_rss_gb"] for r in speed_rows()
            if r["threads"] == 2 and r["cmd"].endswith("--precision auto")}
    assert (f"peaked at {peak['512×512']:.2f} GB at 512², {peak['2048×2048']:.2f} GB at 2048² (16× the pixels) "
            f"and {peak['4000×3000']:.2f} GB at 4000×3000") in README


def test_bf16_speedup():
    rows = {(r["size"], r["intensity"], r["precision"]): r["seconds"] for r in speed_rows()
            if r["encoder"] == "taef2" and r["cmd"].split()[-1] in ("fp32", "bf16")}
    ratios = [rows["512×512", i, "fp32"] / rows["512×512", i, "bf16"] for i in ("low", "default", "high")]
    assert f"took {min(ratios):.1f}–{max(ratios):.1f}× less time in bf16 than in fp32" in README


def test_learned_start_training_time():
    last = rows_file("amortised/train.log").read_text().split()[-1]
    seconds = round(float(last))
    assert f"trained in {seconds} s ({round(seconds / 60)} minutes;" in README
    assert f"{seconds} s, i.e. {round(seconds / 60)} min," in text(BENCH / "amortised" / "RESULTS.md")


def test_platform_mosaic():
    """The --platform section: the mosaic after the independent Instagram-like chain."""
    rows = {r["cloak"]: r for r in jsonl("platforms/mosaic.jsonl")}
    d, ig, ig16 = rows["default"], rows["platform:instagram"], rows["platform:instagram --steps 16"]
    assert f"keeps **{d['after_gap']:.1f} dB** of its {d['gap']:.1f} dB gap over same-PSNR noise" in README
    assert (f"`--platform instagram` keeps **{ig['after_gap']:.1f} dB** ({ig['gap']:.1f} dB before the chain; PSNR "
            f"{ig['psnr']:.1f} dB) in {ig['seconds']:.0f} s instead of the full-size cloak's {d['seconds']:.0f} s") \
        in README
    assert (f"with `--steps 16`, **{ig16['after_gap']:.1f} dB** (PSNR {ig16['psnr']:.1f} dB, "
            f"{ig16['seconds']:.0f} s)") in README


def test_platform_speed():
    rows = {r["case"]: r["seconds"] for r in jsonl("platforms/speed.jsonl")}
    assert (f"fast --platform facebook`: {rows['4000x3000 --platform facebook']:.0f} s, against "
            f"{rows['2048x1536']:.0f} s for the same drawing at 2048×1536") in README


def test_verdict_words_per_kind():
    """The protection words the README quotes per kind of art are those RESULTS.md gives from the verdict
    rows (RESULTS.md itself is regenerated from the rows by tests/test_benchmark_reports.py)."""
    results = text(rows_file("verdicts/RESULTS.md"))
    for kind in ("paintings (12)", "flat (6)", "line (4)"):
        line = results.split(f"{kind}: ", 1)[1].split(".", 1)[0]
        assert f"{kind}: {line}." in README, kind
    row = next(r for r in jsonl("verdicts/rows.jsonl") if r["image"].startswith("00004"))
    assert f"`00004`, {row['view_psnr']:.1f} dB from its original's view but with a ꟻLIP of {row['view_flip']:.3f}" \
        in README


def test_cat_survival_per_kind():
    """The README's kept-after-CAT shares, from the adaptive suite's CAT rows (means per kind)."""
    rows = jsonl("adaptive/cat.jsonl")
    kept = {k: round(100 * statistics.mean(r["cat_kept"] for r in rows if r["kind"] == k)) for k in
            ("paintings", "flat", "line")}
    assert (f"default keeps {kept['paintings']} % of its advantage on paintings, {kept['flat']} % on flat colour and "
            f"{kept['line']} % on line art ({len(rows)} crops;") in README


def test_fill_chroma_on_whole_drawings():
    """The README's --fill-chroma figures: means over the whole line (and flat) drawings of fullsize.jsonl."""
    rows = jsonl("adaptive/fullsize.jsonl")

    def mean(cand: str, kind: str, key: str) -> float:
        return statistics.mean(r[key] for r in rows if r["candidate"] == cand and r["kind"] == kind)

    lines = len({r["image"] for r in rows if r["kind"] == "line"})
    assert (f"On the {['', 'one', 'two', 'three', 'four'][lines]} line drawings at full size it keeps a gap of "
            f"{mean('chroma', 'line', 'gap'):.1f} dB (default {mean('default', 'line', 'gap'):.1f}) with a quarter of "
            f"the lightness grain ({mean('chroma', 'line', 'grain_luma'):.2f}/255 instead of "
            f"{mean('default', 'line', 'grain_luma'):.2f})") in README
    assert (f"it loses over a third of the gap ({mean('chroma', 'flat', 'gap'):.1f} dB instead of "
            f"{mean('default', 'flat', 'gap'):.1f})") in README
    assert mean("chroma", "line", "grain_luma") < mean("default", "line", "grain_luma") / 3.5


def test_mimicry_training_figures():
    """The README's mimicry figures: the style distance of each arm's samples ÷ the clean-trained model's, with the
    95 % bootstrap interval over units, from benchmarks/mimic/summary.csv (which tests/test_benchmark_reports.py
    recomputes from the run's per-unit rows)."""
    with rows_file("mimic/summary.csv").open(newline="") as f:
        style = {r["protection"]: r for r in csv.DictReader(f) if r["metric"] == "style"}

    def ratio(arm: str, interval: bool = True) -> str:
        r = style[f"{arm}glazeish-default"]
        ci = f" [{float(r['ratio_lo']):.2f}, {float(r['ratio_hi']):.2f}]" if interval else ""
        return f"{float(r['ratio']):.2f}×{ci}"

    assert f"models trained on default-cloaked paintings land {ratio('')} as far from the artist's style" in README
    assert f"versus {ratio('same-psnr:')} for same-PSNR noise, and {ratio('jpeg75:', False)} after a JPEG" in README
    assert f"to the cloak's already gives {ratio('statnull:')}, and the samples look much alike" in README


def test_speed_against_the_targets():
    """The targets paragraph: each figure is the range over the held-out images of ``speed/targets`` rows."""
    rows = [r for r in jsonl("speed/targets/results.jsonl") if "seconds" in r and not r.get("unit")]
    units = [r for r in jsonl("speed/targets/results.jsonl") if r.get("unit")]
    u = {lv: statistics.median(r["u_seconds"] for r in units if r["level"] == lv) for lv in ("native", "avx2")}

    def span(fmt: str, args: str, level: str, key, size: str = "512×512") -> str:
        got = sorted(key(r) for r in rows if r["size"] == size and r["level"] in level.split(",")
                     and r["cmd"].split("--precision auto")[-1].strip() == args)
        lo, hi = fmt.format(got[0]), fmt.format(got[-1])
        return lo if lo == hi else f"{lo}–{hi}"

    def in_u(r):
        return r["process_wall_s"] / u[r["level"]]

    fast, default, alone = "--intensity fast", "--intensity default", "--start network --steps 0"
    assert f"U = {u['avx2']:.2f} s held to AVX2, {u['native']:.2f} s natively" in README
    assert (f"`fast` takes {span('{:.0f}', fast, 'avx2', in_u)} U held to AVX2 "
            f"({span('{:.0f}', fast, 'avx2', lambda r: r['process_wall_s'])} s; "
            f"{span('{:.0f}', fast, 'native', in_u)} U natively) and keeps "
            f"{span('{:.1f}', fast, 'avx2,native', lambda r: r['figures']['summary']['view_gap'])} dB of gap over "
            f"same-PSNR noise (the mimic's view of the cloak "
            f"{span('{:.1f}', fast, 'avx2,native', lambda r: r['figures']['before']['cloak']['view_psnr'])} dB from "
            "the original's)") in README
    assert (f"the default {span('{:.0f}', default, 'avx2', in_u)} U "
            f"({span('{:.0f}', default, 'avx2', lambda r: r['process_wall_s'])} s; "
            f"{span('{:.0f}', default, 'native', in_u)} U natively)") in README
    assert (f"keeps only {span('{:.1f}', alone, 'avx2,native', lambda r: r['figures']['summary']['view_gap'])} dB "
            "on the painting (its view "
            f"{span('{:.1f}', alone, 'avx2,native', lambda r: r['figures']['before']['cloak']['view_psnr'])} dB from "
            "the original's)") in README
    assert f"takes {span('{:.0f}', alone, 'avx2', in_u)} U held to AVX2, almost all of it the figures" in README
    assert (f"2048² `fast` took {span('{:.0f}', fast, 'avx2', in_u, '2048×2048')} U held to AVX2 "
            f"({span('{:.0f}', fast, 'avx2', lambda r: r['process_wall_s'], '2048×2048')} s)") in README
