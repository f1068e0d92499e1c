"""Perceptual budget map and perceptual penalty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glazeish.budget import budget_map, dark_adaptation, masking_activity, perceptual_penalty

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
EPS = 4 / 255


def half_flat_half_textured(h: int = 64, w: int = 128, seed: int = 0) -> torch.Tensor:
    """Left half one flat mid-tone colour, right half strong noise texture around the same colour."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(1, 3, h, w)
    x[:] = torch.tensor([0.55, 0.6, 0.5]).view(1, 3, 1, 1)
    x[..., w // 2 :] += 0.15 * torch.randn(1, 3, h, w - w // 2, generator=g)
    return x.clamp(0, 1)


def load(path: Path, size: int = 128) -> torch.Tensor:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    img = img.crop((0, 0, min(img.width, 2 * size), min(img.height, 2 * size))).resize((size, size), Image.LANCZOS)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255


def test_shape_and_bounds():
    x = torch.rand(3, 3, 40, 56)
    m = budget_map(x, EPS)
    assert m.shape == (3, 1, 40, 56)
    assert float(m.min()) >= 0 and float(m.max()) <= EPS + 1e-9
    assert not m.requires_grad


def test_flat_half_gets_floor_textured_half_more():
    x = half_flat_half_textured()
    m = budget_map(x, EPS, floor=0.25)
    w = x.shape[-1]
    flat = m[..., :, : w // 2 - 4]  # away from the boundary between the halves
    textured = m[..., :, w // 2 + 4 :]
    assert torch.allclose(flat, torch.full_like(flat, 0.25 * EPS), rtol=1e-4, atol=1e-7)
    assert float(textured.mean()) > 0.9 * EPS
    assert float(m.max()) <= EPS + 1e-9


def test_floor_parameter_and_zero_eps():
    x = half_flat_half_textured()
    w = x.shape[-1]
    for floor in (0.0, 0.5, 1.0):
        m = budget_map(x, EPS, floor=floor)
        assert torch.allclose(m[..., : w // 2 - 4], torch.full_like(m[..., : w // 2 - 4], floor * EPS), atol=1e-7)
    assert torch.allclose(budget_map(x, EPS, floor=1.0), torch.full((1, 1, *x.shape[-2:]), EPS))
    assert float(budget_map(x, 0.0).abs().max()) == 0
    with pytest.raises(ValueError):
        budget_map(x, EPS, floor=1.5)


def test_smooth_gradient_gets_the_floor():
    ramp = torch.linspace(0.1, 0.9, 128).view(1, 1, 1, 128).expand(1, 3, 64, 128).contiguous()
    m = budget_map(ramp, EPS, floor=0.25, luminance=False)[..., 4:-4]  # the border bends the ramp
    assert torch.allclose(m, torch.full_like(m, 0.25 * EPS), rtol=1e-3)


def test_edges_get_more_but_no_wide_halo():
    """An outline: full budget on the line, the floor a few pixels away from it in the fill."""
    x = torch.full((1, 3, 64, 64), 0.8)
    x[..., 30:34] = 0.1  # a 4-px dark vertical outline on a light fill
    m = budget_map(x, EPS, floor=0.25)[0, 0]
    assert float(m[:, 29:35].mean()) > 0.8 * EPS  # the line and its anti-aliasing pixels
    assert torch.allclose(m[:, :26], torch.full_like(m[:, :26], 0.25 * EPS))  # >= 4 px away
    assert torch.allclose(m[:, 38:], torch.full_like(m[:, 38:], 0.25 * EPS))


def test_dark_flat_fill_stays_at_floor_dark_outline_gains():
    x = torch.full((1, 3, 64, 64), 0.12)  # a big dark fill ...
    m = budget_map(x, EPS)
    assert torch.allclose(m, torch.full_like(m, 0.25 * EPS))
    x[..., 20:44, 20:44] = 0.9  # ... with a light box in it: its dark surround next to the box gains
    m = budget_map(x, EPS)[0, 0]
    assert float(m[32, 18]) > float(budget_map(x, EPS, luminance=False)[0, 0, 32, 18])
    assert dark_adaptation(torch.tensor([0.0, 0.5, 1.0])).tolist() == pytest.approx([20 / 3, 1.0, 1.0], rel=1e-3)


def test_alpha_zero_gets_zero():
    x = half_flat_half_textured()
    alpha = torch.ones(1, 1, *x.shape[-2:])
    alpha[..., :10, :] = 0
    alpha[..., 10:20, :] = 0.5  # semi-transparent keeps its budget
    m = budget_map(x, EPS, alpha=alpha)
    ref = budget_map(x, EPS)
    assert float(m[..., :10, :].abs().max()) == 0
    assert torch.equal(m[..., 10:, :], ref[..., 10:, :])


def test_radius_and_tiny_images():
    x = half_flat_half_textured()
    for r in (0, 1, 4):
        m = budget_map(x, EPS, radius=r)
        assert m.shape == (1, 1, *x.shape[-2:])
    assert budget_map(torch.rand(1, 3, 2, 2), EPS).shape == (1, 1, 2, 2)
    assert masking_activity(torch.rand(2, 3, 16, 16)).shape == (2, 1, 16, 16)


def test_batch_items_are_independent():
    a, b = half_flat_half_textured(seed=1), torch.rand(1, 3, 64, 128)
    both = budget_map(torch.cat([a, b]), EPS)
    assert torch.allclose(both[:1], budget_map(a, EPS)) and torch.allclose(both[1:], budget_map(b, EPS))


def test_flat_drawing_gets_less_than_a_painting():
    flats = sorted((IMAGES / "flat").glob("*.png"))
    paintings = sorted((IMAGES / "paintings").glob("*.png"))
    if not flats or not paintings:
        pytest.skip(f"test images not found under {IMAGES}")
    flat_mean = float(budget_map(load(flats[0]), EPS).mean())
    paint_mean = float(budget_map(load(paintings[0]), EPS).mean())
    assert flat_mean < 0.6 * paint_mean
    assert flat_mean < 0.6 * EPS


@pytest.mark.parametrize("kind", ["ssim", "lab"])
def test_perceptual_penalty(kind):
    x = half_flat_half_textured()
    assert torch.allclose(perceptual_penalty(x, x, kind), torch.zeros(1), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    noise = (torch.rand(x.shape, generator=g) * 2 - 1) * EPS
    w = x.shape[-1]
    on_flat, on_texture = torch.zeros_like(x), torch.zeros_like(x)
    on_flat[..., : w // 2] = noise[..., : w // 2]
    on_texture[..., w // 2 :] = noise[..., w // 2 :]
    x_adv = (x + on_flat).clamp(0, 1).requires_grad_(True)
    p = perceptual_penalty(x_adv, x, kind)
    assert p.shape == (1,) and float(p.detach()) > 0
    p.sum().backward()
    assert x_adv.grad is not None and float(x_adv.grad.abs().sum()) > 0
    if kind == "ssim":  # SSIM, like the budget map, forgives noise in texture more than on flat colour
        assert float(perceptual_penalty((x + on_texture).clamp(0, 1), x, kind)) < float(p.detach())
    with pytest.raises(ValueError):
        perceptual_penalty(x, x, "psnr")


def test_budget_map_plugs_into_pgd():
    """PGD takes the map as ``eps_map`` (B×1×H×W broadcasts over channels) and keeps |δ| within it."""
    from glazeish.attack import PGD
    from glazeish.encoders import LatentModel
    from glazeish.objectives import Untargeted

    torch.manual_seed(0)
    enc = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, stride=2, padding=1)
    )
    model = LatentModel("tiny", enc.eval().requires_grad_(False), multiple=4)
    x = half_flat_half_textured(h=32, w=64)
    m = budget_map(x, EPS)
    x_adv = PGD(model, Untargeted(), eps=EPS, steps=3, precision="fp32")(x, eps_map=m)
    delta = (x_adv - x).abs()
    assert bool((delta <= m + 1e-6).all())
    assert float(delta[..., 32:].mean()) > float(delta[..., :32].mean())  # spends more on the texture
