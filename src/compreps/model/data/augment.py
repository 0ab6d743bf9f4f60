"""Training-time augmentation on whole batches, on the training device.

One advanced-indexing gather does the zero-padded random crop and the horizontal flip of every
sample of a batch (the distribution of torchvision's ``RandomCrop(size, padding=4)`` followed by
``RandomHorizontalFlip()``), so no per-sample DataLoader or worker process is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING = 4


def augment_batch(
    images: torch.Tensor, generator: torch.Generator, padding: int = PADDING
) -> torch.Tensor:
    """Random crop with ``padding`` zero pixels on every side, then a random horizontal flip.

    The same distribution as torchvision's ``RandomCrop(size, padding=4)`` followed by
    ``RandomHorizontalFlip()``: each sample gets its own offset ``(dy, dx)`` in
    ``[0, 2 * padding]`` and is mirrored with probability 1/2. ``images`` is uint8 N×C×H×W on
    any device (``generator`` must live on the same device); the result has the same shape and
    dtype. One advanced-indexing gather does crop and flip for the whole batch.
    """
    n, channels, height, width = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))  # constant 0, as torchvision
    span = 2 * padding + 1
    dy = torch.randint(0, span, (n,), generator=generator, device=device)
    dx = torch.randint(0, span, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    row = torch.arange(height, device=device)
    col = torch.arange(width, device=device)
    rows = dy[:, None] + row  # n×H: source row of each output row
    # A mirrored crop reads the crop's columns right to left.
    cols = dx[:, None] + torch.where(flip[:, None], width - 1 - col, col)  # n×W
    return padded[
        torch.arange(n, device=device)[:, None, None, None],
        torch.arange(channels, device=device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
