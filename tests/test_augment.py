"""Batch augmentation of the training step: zero-padded random crop + horizontal flip.

Every output sample is compared exactly with a reference built independently from
``torch.nn.functional.pad`` and slicing (torchvision's ``RandomCrop(padding=4)`` followed by
``RandomHorizontalFlip``), recovering each sample's offset and flip.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from compreps.model.data.augment import PADDING, augment_batch
from compreps.model.networks import normalize

SHAPES = [(3, 32, 32), (1, 28, 28)]


def noise_images(n: int, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """Random uint8 images with values 1..255, so a 0 can only come from the padding."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, *shape), generator=gen, dtype=torch.uint8)


def recover_crops(images: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """For each sample the unique (dy, dx, flipped) with ``out == crop`` (or its mirror) of the
    zero-padded input; -1 rows where no reference matches. Returns n×3 int64."""
    n, _, h, w = images.shape
    padded = F.pad(images, (PADDING,) * 4, mode="constant", value=0)
    found = torch.full((n, 3), -1, dtype=torch.int64)
    matches = torch.zeros(n, dtype=torch.int64)
    for dy in range(2 * PADDING + 1):
        for dx in range(2 * PADDING + 1):
            crop = padded[:, :, dy : dy + h, dx : dx + w]
            for flipped, ref in ((0, crop), (1, crop.flip(-1))):
                hit = (out == ref).flatten(1).all(1)
                found[hit] = torch.tensor([dy, dx, flipped])
                matches += hit
    assert matches.max() <= 1, "a sample matches two references: use noisier test images"
    return found


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_dtype_and_input_untouched(shape):
    images = noise_images(16, shape)
    before = images.clone()
    out = augment_batch(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(images, before)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_sample_is_a_padded_crop_or_its_mirror(shape):
    images = noise_images(300, shape)
    out = augment_batch(images, torch.Generator().manual_seed(2))
    found = recover_crops(images, out)
    assert (found >= 0).all(), f"{int((found[:, 0] < 0).sum())} samples match no reference"
    # offsets cover the whole range [0, 2 * padding] in both directions, and both flips occur
    assert set(found[:, 0].tolist()) == set(range(9))
    assert set(found[:, 1].tolist()) == set(range(9))
    assert set(found[:, 2].tolist()) == {0, 1}


def test_zero_padding_at_extreme_offsets():
    images = noise_images(400, (3, 32, 32), seed=3)
    out = augment_batch(images, torch.Generator().manual_seed(4))
    found = recover_crops(images, out)
    zero_rows = (out == 0).all(dim=1).all(dim=2)  # n×H: whole row zero in every channel
    zero_cols = (out == 0).all(dim=1).all(dim=1)  # n×W
    checked = 0
    for i, (dy, dx, flipped) in enumerate(found.tolist()):
        top, bottom = max(0, PADDING - dy), max(0, dy - PADDING)
        left, right = max(0, PADDING - dx), max(0, dx - PADDING)
        if flipped:
            left, right = right, left
        expected_rows = torch.zeros(32, dtype=torch.bool)
        expected_rows[:top] = True
        expected_rows[32 - bottom :] = True
        expected_cols = torch.zeros(32, dtype=torch.bool)
        expected_cols[:left] = True
        expected_cols[32 - right :] = True
        assert torch.equal(zero_rows[i], expected_rows), (i, dy, dx)
        assert torch.equal(zero_cols[i], expected_cols), (i, dy, dx, flipped)
        checked += dy in (0, 8) or dx in (0, 8)
    assert checked > 50  # many samples sit at an extreme offset: 4 zero rows or columns


def test_flip_rate_is_one_half():
    images = noise_images(2000, (1, 8, 8), seed=5)
    found = recover_crops(images, augment_batch(images, torch.Generator().manual_seed(6)))
    assert (found >= 0).all()
    rate = found[:, 2].float().mean().item()
    assert abs(rate - 0.5) < 0.05  # 4.5 binomial standard deviations


def test_seeded_generator_reproduces_and_advances():
    images = noise_images(64, (3, 32, 32))
    first = augment_batch(images, torch.Generator().manual_seed(7))
    again = augment_batch(images, torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    gen = torch.Generator().manual_seed(7)
    augment_batch(images, gen)
    assert not torch.equal(augment_batch(images, gen), first)


def test_normalize_with_device_tensors_matches_tuples():
    """The training loop passes mean/std already on the device (no host copy per step)."""
    images = noise_images(8, (3, 32, 32))
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    column = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    expected = (
        images.double() / 255 - torch.tensor(mean).double().view(1, -1, 1, 1)
    ) / torch.tensor(std).double().view(1, -1, 1, 1)
    assert torch.equal(normalize(images, *column), normalize(images, mean, std))
    assert torch.allclose(normalize(images, mean, std).double(), expected, atol=1e-5)
