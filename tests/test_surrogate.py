"""Skip gradient on the attacked encoders: the forward pass and the loss unchanged, only the gradient bent."""

import pytest
import torch

from glazeish.attack import PGD
from glazeish.objectives import make_objective
from glazeish.surrogate import SkipGradient, residual_bodies


def _grad(model, x, gamma):
    x = x.clone().requires_grad_(True)
    with SkipGradient([model], gamma):
        z = model.encode(x)
    (g,) = torch.autograd.grad(z.square().sum(), x)
    return z.detach(), g


def test_finds_every_residual_block_of_the_tae_encoders(taef2, taesana):
    # TAEF2's encoder has 1 + 3 + 3 + 3 Blocks, TAESANA's 1 + 3 + 3 + 3
    assert len(residual_bodies(taef2.encoder)) == 10
    assert len(residual_bodies(taesana.encoder)) == 10


def test_forward_unchanged_gradient_bent_and_hooks_removed(taef2):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    z1, g1 = _grad(taef2, x, 1.0)
    z5, g5 = _grad(taef2, x, 0.5)
    assert torch.equal(z1, z5)
    assert not torch.allclose(g1, g5)
    cos = torch.nn.functional.cosine_similarity(g1.flatten(), g5.flatten(), dim=0)
    assert 0.2 < cos < 0.999  # the same loss's gradient, leaning elsewhere
    assert all(not layer._forward_hooks for layer in residual_bodies(taef2.encoder))
    assert torch.equal(_grad(taef2, x, 1.0)[1], g1)


def test_diffusers_resnet_blocks_are_found():
    diffusers = pytest.importorskip("diffusers")
    vae = diffusers.AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                                  layers_per_block=1)
    assert len(residual_bodies(vae.encoder)) == 2 + 2  # one per down block, two in the mid block


@pytest.mark.parametrize("gamma", [0, -0.5, 1.5])
def test_gamma_outside_0_1_is_refused(taef2, gamma):
    with pytest.raises(ValueError, match="gamma"):
        SkipGradient([taef2], gamma)


def test_pgd_with_skip_gradient_is_repeatable_and_differs(taef2):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    attack = lambda g: PGD(taef2, make_objective("untargeted"), eps=4 / 255, steps=3, skip_grad=g, precision="fp32")
    a, b, plain = attack(0.5)(x), attack(0.5)(x), attack(1.0)(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, plain)
    assert (a - x).abs().max() <= 4 / 255 + 1e-6


def test_ghost_changes_the_forward_only_inside_and_replays(taef2):
    from glazeish.surrogate import Ghost

    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        clean = taef2.encode(x)
        with Ghost([taef2], 0.22, seed=3):
            a = taef2.encode(x)
        with Ghost([taef2], 0.22, seed=3):
            b = taef2.encode(x)
        after = taef2.encode(x)
    assert torch.equal(a, b) and torch.equal(after, clean)
    assert not torch.equal(a, clean)
    with pytest.raises(ValueError, match="erosion"):
        Ghost([taef2], 1.0)


def test_pgd_with_ghost_gives_the_same_cloak_on_every_call(taef2):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    attack = PGD(taef2, make_objective("untargeted"), eps=4 / 255, steps=3, ghost=0.22, precision="fp32")
    a, b = attack(x), attack(x)  # the draws restart per call: a tile's cloak does not follow the tiles before it
    assert torch.equal(a, b)
    assert not torch.equal(a, PGD(taef2, make_objective("untargeted"), eps=4 / 255, steps=3, precision="fp32")(x))


def test_fill_chroma_keeps_the_fills_lightness(taef2):
    from glazeish.attack import LUMA
    from glazeish.metrics import flat_mask

    x = torch.full((1, 3, 64, 64), 0.6)
    x[..., 20:44, 20:44] = torch.tensor([0.2, 0.3, 0.8]).view(1, 3, 1, 1)  # a blue square on a grey fill
    attack = lambda chroma: PGD(taef2, make_objective("untargeted"), eps=4 / 255, steps=3, fill_chroma=chroma,
                                precision="fp32")
    fills = flat_mask(x)
    w = torch.tensor(LUMA).view(1, 3, 1, 1)
    luma = lambda a: ((a - x) * w).sum(1, keepdim=True).abs()[fills.bool()]
    plain, chroma = attack(False)(x), attack(True)(x)
    assert luma(chroma).max() < 1e-5 < luma(plain).max()
    assert (chroma - x).abs()[fills.expand_as(x).bool()].max() > 1 / 255  # the fills still change, in colour
