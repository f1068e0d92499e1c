"""The mimicry run: the versions of the artist's set (each protection, its draws, the statistics nulls), their
protected pixels and TAEF2 latents (cached in ``WORK``), one training per (version, seed) with its samples, and the
metrics of every finished version against the clean reference crops; a finished version is skipped."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...imageio import ImageError, read_image, save_image, to_tensor
from ...metadata import MetadataOptions
from ...metrics import StyleFeatures
from .config import METRICS, NONE, Log, MimicConfig, _safe
from .report import RESULTS_FIELDS, UNITS, _figures, _run_dir, _to_u8, _write_csv, report_from_rows
from .stats import ImageStats, c2st_accuracy, histogram_pixels, image_stats, set_distances
from .units import unit_rows, write_units
from .training import LatentSet, sample_flow, train

__all__ = ["MimicResult", "MimicRun", "Version", "run_mimic"]

def _match_channel_stats(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``z`` (``C×h×w``) with each channel shifted and scaled to the mean and std of ``like``'s channel."""
    mu, sd = z.mean((1, 2), keepdim=True), z.std((1, 2), keepdim=True).clamp_min(1e-6)
    return (z - mu) / sd * like.std((1, 2), keepdim=True) + like.mean((1, 2), keepdim=True)


def _load_cache(path: Path, valid: Callable[[object], bool], log: Log) -> object | None:
    """A cache file of the run (latents, samples) as :func:`torch.save` wrote it, or None when it is missing or
    unusable: a torn or foreign file is said in one line, deleted, and rebuilt by the caller (``weights_only``:
    a file on disk is data, never code to run, so an unreadable one is never retried without it)."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        why = "not what this run wrote"
    except Exception as e:  # what torch says here suggests weights_only=False: the one thing not to do
        data, why = None, type(e).__name__
    if data is not None and valid(data):
        return data
    log(f"{path}: corrupt cache file ({why}); deleted, it will be rebuilt")
    path.unlink(missing_ok=True)
    return None


def _are_samples(data: object) -> bool:
    return isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and data.dim() == 4


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]



@dataclass
class MimicResult:
    """What :func:`run_mimic` did: result files, versions trained now and versions skipped as finished."""

    out: Path
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Version:
    """One training set of the experiment: one draw of a protection on every image, or a statistics null.

    ``stat_null``: the clean images' latents, each channel shifted and scaled per image to the mean and
    standard deviation of the protection's latents — the same colour/latent statistics, none of its structure,
    so that a shift explained by statistics alone shows up here too.
    """

    name: str
    prot: object  # a benchmark Protection
    draw: int = 0
    stat_null: bool = False

    @property
    def family(self) -> str:
        """The name without the draw: every draw of a protection is one arm."""
        return self.name.split("#", 1)[0]

    @property
    def cache_key(self):
        return self.prot.cache_key

    @property
    def eps_levels(self):
        return self.prot.eps_levels


def _seeded(prot) -> bool:
    """Whether a protection draws anything random (its output changes with the protection seed)."""
    return prot.name != NONE and not hasattr(prot, "folder") and not getattr(getattr(prot, "inner", None),
                                                                               "folder", None)



class _CachedInner:
    """The protection that a same-PSNR / JPEG arm wraps, read through the run's cache of its own arm (the same
    file, key and draw): otherwise every wrapping arm would cloak every image again, minutes each, for the same
    pixels (a cloak is deterministic for its seed). Everything but ``protect`` is the wrapped protection's."""

    def __init__(self, run: MimicRun, inner, draw: int):
        self._run, self._inner, self._draw = run, inner, draw

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        return self._run._cached(self._inner, self._draw, rgb, key)


class MimicRun:
    """Loads the encoders once and runs a :class:`MimicConfig` (see the module doc)."""

    def __init__(self, config: MimicConfig, log: Log | None = None):
        from ...encoders import Ensemble, load_encoder
        from ..harness import image_key, interleaved_images
        from ..protections import BenchContext, make_protection, split_protections

        self.cfg = c = config
        self.log = log or (lambda s: print(s, file=sys.stderr))
        self.out = Path(c.out)
        self.work = Path(c.work) if c.work else self.out / "work"
        self.taef2 = load_encoder("taef2", c.models_dir)
        self.style = StyleFeatures(load_encoder("taesana", c.models_dir).encoder)
        self.files = interleaved_images(c.images, c.limit)
        if not self.files:
            raise ValueError(f"no images found in {', '.join(c.images)}")
        self.keys = [image_key(f) for f in self.files]
        ensemble = Ensemble([self.taef2])

        def ctx(draw: int) -> BenchContext:
            return BenchContext(eps_levels=c.eps_levels, seed=c.protect_seed + draw, encoder="taef2", device=c.device,
                                models_dir=c.models_dir, external=dict(c.external), ensemble=ensemble)

        names = split_protections([p for p in c.protections if not p.startswith("statnull:")], c.external)
        nulls = [p.removeprefix("statnull:") for p in c.protections if p.startswith("statnull:")]
        split_protections(nulls, c.external)  # check the names
        names = [NONE] + [n for n in names if n != NONE]  # the clean-trained model is every ratio's denominator
        self.versions: list[Version] = []
        for name, null in [(n, False) for n in names] + [(n, True) for n in nulls]:
            first = make_protection(name, ctx(0))
            draws = c.draws if _seeded(first) else 1
            for k in range(draws):
                prot = first if k == 0 else make_protection(name, ctx(k))
                if getattr(prot, "inner", None) is not None:
                    prot.inner = _CachedInner(self, prot.inner, k)
                label = ("statnull:" if null else "") + name + (f"#{k}" if draws > 1 else "")
                self.versions.append(Version(label, prot, k, null))
        self.protections = self.versions  # what the report iterates over, in order
        self.originals = []
        for f in self.files:
            rgb = read_image(f).rgb
            h, w = rgb.shape[0] // 8 * 8, rgb.shape[1] // 8 * 8
            if min(h, w) < c.crop:
                raise ValueError(f"{f}: {rgb.shape[1]}x{rgb.shape[0]} is smaller than --crop {c.crop}")
            self.originals.append(rgb[:h, :w])

    # -- data -----------------------------------------------------------------------------------

    def _positions(self, n: int, seed: int) -> list[tuple[int, int, int]]:
        """``n`` crop positions ``(image, top, left)`` in pixels, on the 8-pixel latent grid."""
        gen = torch.Generator().manual_seed(seed)
        out = []
        s = self.cfg.crop
        for _ in range(n):
            i = int(torch.randint(len(self.originals), (1,), generator=gen))
            h, w = self.originals[i].shape[:2]
            out.append((i, 8 * int(torch.randint((h - s) // 8 + 1, (1,), generator=gen)),
                        8 * int(torch.randint((w - s) // 8 + 1, (1,), generator=gen))))
        return out

    def real_crops(self, positions: list[tuple[int, int, int]]) -> torch.Tensor:
        s = self.cfg.crop
        return torch.cat([to_tensor(self.originals[i][y:y + s, x:x + s]) for i, y, x in positions])

    def protected(self, version: Version, k: int) -> np.ndarray:
        """Protected pixels of image ``k`` (cached as PNG under WORK/cache, like ``bench run``'s cache)."""
        return self._cached(version.prot, version.draw, self.originals[k], self.keys[k])

    def _cached(self, prot, draw: int, rgb: np.ndarray, key: str) -> np.ndarray:
        """``prot``'s output for one image (``H×W×3`` uint8, the original's size), read from or written to
        WORK/cache/<protection>-<its key>-d<draw>/<image key>.png (no cache for a protection without a key)."""
        path = None
        if prot.cache_key is not None:
            path = self.work / "cache" / f"{_safe(prot.name)}-{prot.cache_key}-d{draw}" / f"{key}.png"
            if path.is_file():
                try:
                    cached = read_image(path).rgb
                    if cached.shape == rgb.shape:
                        return cached
                except ImageError:
                    pass
        out = prot.protect(rgb, key)
        if out.shape != rgb.shape:  # an external file of the uncropped size: crop it the same way
            out = out[:rgb.shape[0], :rgb.shape[1]]
        if path is not None:
            save_image(path, out, metadata=MetadataOptions(enabled=False))
        return out

    def _version_id(self, version: Version) -> str:
        prot = version.prot
        ext = getattr(prot, "folder", None) or getattr(getattr(prot, "inner", None), "folder", None)
        ext_sig = None
        if ext is not None:
            ext_sig = sorted((p.name, p.stat().st_size) for p in Path(ext).rglob("*") if p.is_file())
        return _hash([version.name, prot.cache_key, prot.eps_levels, self.cfg.protect_seed + version.draw, self.keys,
                      ext_sig])

    def latents(self, version: Version) -> list[torch.Tensor]:
        """TAEF2 latents (``C×H/8×W/8``) of the protected full images, cached under WORK/latents."""
        path = self.work / "latents" / f"{_safe(version.name)}-{self._version_id(version)}.pt"
        cached = _load_cache(path, self._are_latents, self.log)
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        if version.stat_null:
            clean = self.latents(self.versions[0])
            moved = self.latents(Version(version.name.removeprefix("statnull:"), version.prot, version.draw))
            out = [_match_channel_stats(z0, z1) for z0, z1 in zip(clean, moved)]
        else:
            out = []
            for k in range(len(self.originals)):
                rgb = self.protected(version, k)  # outside no_grad: an attack needs gradients
                with torch.no_grad():
                    out.append(self.taef2.encode(to_tensor(rgb))[0].clone())
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(out, path)
        self.log(f"{version.name}: latents of {len(out)} images in {time.perf_counter() - t0:.0f} s")
        return out

    def _are_latents(self, data: object) -> bool:
        """Whether a cache file holds latents (``C×h×w``) of every image of the set."""
        return isinstance(data, list) and len(data) == len(self.originals) and all(
            isinstance(z, torch.Tensor) and z.dim() == 3 for z in data)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch: int = 16) -> torch.Tensor:
        return torch.cat([self.taef2.decode(z[i:i + batch]) for i in range(0, len(z), batch)])

    # -- one version ----------------------------------------------------------------------------

    def _run_dir(self, prot, seed: int) -> Path:
        return _run_dir(self.out, prot, seed)

    def _samples_path(self, prot, seed: int) -> Path:
        return self.work / "samples" / _safe(prot.name) / f"seed{seed}-{self._key(prot)}.pt"

    def _key(self, prot) -> str:
        return _hash([self.cfg.train_key(), self._version_id(prot)])

    def finished(self, prot, seed: int) -> bool:
        meta = self._run_dir(prot, seed) / "metrics.json"
        if not meta.is_file() or not self._samples_path(prot, seed).is_file():
            return False
        try:
            same = json.loads(meta.read_text()).get("key") == self._key(prot)
        except (OSError, ValueError):
            return False
        return same and _load_cache(self._samples_path(prot, seed), _are_samples, self.log) is not None

    def run_version(self, prot, seed: int, data: LatentSet) -> dict:
        """Train, sample, decode and save one (protection, seed); returns its metrics.json content."""
        c = self.cfg
        t0 = time.perf_counter()
        ckpt = self.work / "ckpt" / _safe(prot.name) / f"seed{seed}-{self._key(prot)}.ckpt"
        model, losses = train(data, c, seed, ckpt, lambda s: self.log(f"{prot.name} seed {seed}: {s}"))
        t_train = time.perf_counter() - t0
        size = c.crop // 8
        gen = torch.Generator().manual_seed(10_007 * seed + 2)
        z = sample_flow(model, c.samples, (data.latents[0].shape[0], size, size), c.sample_steps, gen)
        images = self.decode(data.denormalise(z))
        sp = self._samples_path(prot, seed)
        sp.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_to_u8(images), sp)
        run_dir = self._run_dir(prot, seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "losses.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "loss"])
            w.writerows((i + 1, f"{v:.6f}") for i, v in enumerate(losses))
        meta = {"protection": prot.name, "seed": seed, "key": self._key(prot), "eps": prot.eps_levels,
                "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):])),
                "train_seconds": round(t_train, 1), "total_seconds": round(time.perf_counter() - t0, 1),
                "parameters": sum(p.numel() for p in model.parameters())}
        (run_dir / "metrics.json").write_text(json.dumps(meta, indent=2))
        return meta

    # -- everything -----------------------------------------------------------------------------

    def run(self) -> MimicResult:
        c = self.cfg
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        result = MimicResult(self.out)
        (self.out / "config.json").write_text(json.dumps(
            {**asdict(c), "protections": [p.name for p in self.protections], "images_used": self.keys}, indent=2))
        for prot in self.protections:
            todo = [s for s in c.seeds if not self.finished(prot, s)]
            for s in c.seeds:
                if s not in todo:
                    result.skipped.append(f"{prot.name}/seed{s}")
            if not todo:
                continue
            data = LatentSet.of(self.latents(prot))
            for s in todo:
                self.run_version(prot, s, data)
                result.trained.append(f"{prot.name}/seed{s}")
        result.files = self.report()
        result.seconds = time.perf_counter() - t0
        _write_environment(self.out, result, c)
        return result

    def report(self) -> dict[str, Path]:
        """Metrics of every finished version against the clean reference crops: writes ``results.csv`` and
        ``units.jsonl`` (the rows, from the samples), the figures, and then the summary and ``results.md`` from
        those rows alone (:func:`.report.report_from_rows`, what ``--report`` runs)."""
        c = self.cfg
        ref = image_stats(self.real_crops(self._positions(c.n_ref, 999_331)), self.style)
        real_hold = self.real_crops(self._positions(c.samples, 424_243))
        rows: list[dict] = []
        units: list[tuple[str, str, int, int, ImageStats, float]] = []
        samples: dict[str, torch.Tensor] = {}
        data_view: dict[str, torch.Tensor] = {}

        def add_rows(prot: str, stage: str, seed, stats: ImageStats, n: int) -> float:
            d = set_distances(stats, ref)
            d["c2st"] = c2st_accuracy(stats.features, ref.features, seed=0)
            for m in METRICS:
                rows.append({"protection": prot, "stage": stage, "seed": seed, "metric": m, "value": d[m], "n": n})
            return d["c2st"]

        add_rows("(real crops)", "real", "", image_stats(real_hold, self.style), len(real_hold))
        for prot in self.protections:
            data_view[prot.name] = self._data_view(prot)
            add_rows(prot.name, "data", "", image_stats(data_view[prot.name], self.style), c.samples)
            seeds = [s for s in c.seeds if self.finished(prot, s)]
            for s in seeds:
                imgs = _load_cache(self._samples_path(prot, s), _are_samples, self.log).float() / 255  # finished
                if s == seeds[0] and prot.family not in samples:
                    samples[prot.family] = imgs
                st = image_stats(imgs, self.style)
                units.append((prot.family, prot.name, prot.draw, s, st,
                              add_rows(prot.name, "samples", s, st, len(imgs))))
        files = {"results": _write_csv(self.out / "results.csv", rows, RESULTS_FIELDS),
                 "units": write_units(self.out / UNITS, unit_rows(units, ref, histogram_pixels(c.crop, c.crop)))}
        files.update(_figures(self.out, c, self.protections, samples, data_view, real_hold, self.log))
        files.update(report_from_rows(self.out))
        return files

    def _data_view(self, version: Version) -> torch.Tensor:
        """The version's data as the mimic's autoencoder shows it: its latents, cropped at the held-out crops'
        positions and decoded (``samples×3×crop×crop`` in [0, 1])."""
        size = self.cfg.crop // 8
        lat = self.latents(version)
        z = torch.stack([lat[i][:, y // 8:y // 8 + size, x // 8:x // 8 + size]
                         for i, y, x in self._positions(self.cfg.samples, 424_243)])
        return self.decode(z)


def _write_environment(out: Path, result: MimicResult, cfg: MimicConfig) -> None:
    path = out / "environment.json"
    try:
        env = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        env = {}
    runs = env.get("runs", [])
    runs.append({"argv": sys.argv, "trained": result.trained, "skipped": result.skipped,
                 "seconds": round(result.seconds, 1), "time": time.strftime("%Y-%m-%d %H:%M:%S")})
    env.update({"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
                "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "runs": runs})
    path.write_text(json.dumps(env, indent=2))


def run_mimic(config: MimicConfig, log: Log | None = None) -> MimicResult:
    """Run (or resume) a mimicry experiment; see :class:`MimicRun`."""
    return MimicRun(config, log).run()
