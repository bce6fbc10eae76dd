"""Network-input sizing and preprocessing, as torchvision's ``GeneralizedRCNNTransform``.

Every backend feeds :class:`~streamseg.models.graph.MaskRCNNGraph` (eagerly in torch, or
exported) the same ``images`` input, built here: the frame is scaled to [0, 1],
normalised with the model's mean and std, resized bilinearly (``align_corners=False``)
by ``min(min_size / short side, max_size / long side)``, and padded with zeros (in
normalised units) at the bottom and right to the network size. The padding is
letterbox-free: the image sits at the top-left corner and boxes need no offset, only
the scale (:func:`~streamseg.postprocess.postprocess` undoes it). For torchvision's
own results, the network size must be what ``batch_images`` pads that image to (the
resized size rounded up to a multiple of 32, :func:`network_size_for`): more padding
adds anchors and changes the features near the bottom and right border.

:func:`preprocess_tensor` runs on the frame's device (CPU or CUDA) and is the one
implementation; :func:`preprocess` is its numpy (CPU) front.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from streamseg.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "IMAGE_MEAN",
    "IMAGE_STD",
    "SIZE_DIVISIBLE",
    "max_size_for",
    "network_size_for",
    "parse_size",
    "preprocess",
    "preprocess_tensor",
    "resized_size",
]

#: ``GeneralizedRCNNTransform``'s normalisation (ImageNet mean / std of [0, 1] RGB), which every
#: registry model uses (torchvision's detection builders and the demo model keep the default).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
#: Multiple the network-input sides must have (torchvision's ``size_divisible``, the P5 stride).
SIZE_DIVISIBLE = 32


def max_size_for(min_size: int) -> int:
    """Longest resized side for a shorter side of ``min_size`` pixels: torchvision's 800:1333 ratio.

    Args:
        min_size: shorter side after resizing, pixels.

    Returns:
        ``round(min_size * 1333 / 800)`` pixels (torchvision's defaults ``min_size=800``,
        ``max_size=1333`` of ``GeneralizedRCNNTransform``, kept in proportion).
    """
    return round(min_size * 1333 / 800)


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """Parse a network-input size ``"HxW"`` (or a pair) and check it.

    Args:
        text: ``"800x1216"`` or ``(800, 1216)``, pixels.

    Returns:
        (H, W) ints.

    Raises:
        ConfigError: not two positive integers, or a side that is not a multiple of 32
            (the stride of P5: the FPN's top-down sums need exactly halving sizes).
    """
    if isinstance(text, str):
        parts = text.lower().replace(",", "x").split("x")
        try:
            size = tuple(int(p) for p in parts)
        except ValueError:
            size = ()
    else:
        size = tuple(int(v) for v in text)
    if len(size) != 2 or min(size) <= 0:
        raise ConfigError(f"size must be HxW with two positive integers, e.g. 800x1216, got {text!r}")
    bad = [v for v in size if v % SIZE_DIVISIBLE]
    if bad:
        up = tuple(math.ceil(v / SIZE_DIVISIBLE) * SIZE_DIVISIBLE for v in size)
        raise ConfigError(
            f"size {size[0]}x{size[1]} is not a multiple of {SIZE_DIVISIBLE} (the stride of the "
            f"coarsest FPN level); use {up[0]}x{up[1]}"
        )
    return size  # type: ignore[return-value]


def _scale(image_size: Sequence[int], min_size: int, max_size: int) -> float:
    """torchvision's resize factor, in Python floats as eager ``_resize_image_and_masks``."""
    return min(min_size / min(image_size), max_size / max(image_size))


def resized_size(image_size: tuple[int, int], *, min_size: int, max_size: int) -> tuple[int, int]:
    """Size of an image after torchvision's resize (``GeneralizedRCNNTransform.resize``).

    Args:
        image_size: (H, W) of the original image, pixels.
        min_size: target shorter side, pixels.
        max_size: cap on the longer side, pixels.

    Returns:
        (h, w) = ``floor((H, W) * scale)``, ``scale = min(min_size / min(H, W),
        max_size / max(H, W))`` (``F.interpolate(scale_factor=scale,
        recompute_scale_factor=True)``).
    """
    scale = _scale(image_size, min_size, max_size)
    return int(math.floor(image_size[0] * scale)), int(math.floor(image_size[1] * scale))


def network_size_for(image_size: tuple[int, int], *, min_size: int, max_size: int) -> tuple[int, int]:
    """The network-input size torchvision uses for an image: its resized size rounded up to 32.

    Args:
        image_size: (H, W) of the original image, pixels.
        min_size: target shorter side, pixels.
        max_size: cap on the longer side, pixels.

    Returns:
        (H', W'), multiples of 32 (``GeneralizedRCNNTransform.batch_images``).
    """
    h, w = resized_size(image_size, min_size=min_size, max_size=max_size)
    return (
        int(math.ceil(h / SIZE_DIVISIBLE) * SIZE_DIVISIBLE),
        int(math.ceil(w / SIZE_DIVISIBLE) * SIZE_DIVISIBLE),
    )


def _check_image(image: object) -> None:
    """Raise ConfigError unless ``image`` has an (H, W, 3) uint8 layout (array or tensor)."""
    shape = tuple(getattr(image, "shape", ()))
    dtype = str(getattr(image, "dtype", type(image).__name__))
    if len(shape) != 3 or shape[2] != 3 or dtype not in ("uint8", "torch.uint8"):
        raise ConfigError(f"expected an (H, W, 3) uint8 RGB image, got shape {getattr(image, 'shape', None)} dtype {dtype}")


def preprocess_tensor(
    image: torch.Tensor,
    *,
    size: tuple[int, int],
    min_size: int,
    max_size: int,
    image_mean: Sequence[float] = IMAGE_MEAN,
    image_std: Sequence[float] = IMAGE_STD,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Turn an RGB frame tensor into the graph's ``images`` input, on the frame's device.

    The arithmetic of ``to_tensor`` (``x / 255``), ``GeneralizedRCNNTransform.normalize``
    (``(x - mean) / std``), ``_resize_image_and_masks`` (``F.interpolate(scale_factor=scale,
    mode="bilinear", recompute_scale_factor=True, align_corners=False)``) and
    ``batch_images`` (zero padding), in that order, so the result equals torchvision's
    ``model.transform`` bit for bit on the same device.

    Args:
        image: (H, W, 3) uint8 RGB, on any device (CPU or CUDA).
        size: (H', W') network-input size, multiples of 32.
        min_size: target shorter side after resizing, pixels.
        max_size: cap on the longer side after resizing, pixels.
        image_mean: per-channel mean of the [0, 1] image (the model's ``transform.image_mean``).
        image_std: per-channel std (``transform.image_std``).

    Returns:
        ``(images, (h, w))``: (1, 3, H', W') float32 on ``image``'s device, the normalised
        image resized to (h, w) in the top-left corner and zeros elsewhere; and (h, w),
        the resized size in pixels (the graph's ``image_size`` input).

    Raises:
        ConfigError: the image is not (H, W, 3) uint8, or its resized size does not fit
            in ``size``.
    """
    import torch
    from torch.nn import functional as F

    _check_image(image)
    height, width = int(image.shape[0]), int(image.shape[1])
    h, w = resized_size((height, width), min_size=min_size, max_size=max_size)
    if h > size[0] or w > size[1]:
        raise ConfigError(
            f"a {width}x{height} frame resizes to {w}x{h} (min_size {min_size}, "
            f"max_size {max_size}), which does not fit the network input {size[1]}x{size[0]}"
        )
    with torch.inference_mode():
        x = image.permute(2, 0, 1).to(torch.float32).div(255)
        mean = torch.tensor(image_mean, dtype=torch.float32, device=x.device)[:, None, None]
        std = torch.tensor(image_std, dtype=torch.float32, device=x.device)[:, None, None]
        x = (x - mean) / std
        scale = _scale((height, width), min_size, max_size)
        x = F.interpolate(x[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False)
        out = torch.zeros((1, 3, size[0], size[1]), dtype=torch.float32, device=x.device)
        out[:, :, : x.shape[2], : x.shape[3]] = x
    return out, (int(x.shape[2]), int(x.shape[3]))


def preprocess(
    image: np.ndarray,
    *,
    size: tuple[int, int],
    min_size: int,
    max_size: int,
    image_mean: Sequence[float] = IMAGE_MEAN,
    image_std: Sequence[float] = IMAGE_STD,
) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`preprocess_tensor` of a numpy frame, on the CPU, to a numpy input.

    Args:
        image: (H, W, 3) uint8 RGB.
        size: (H', W') network-input size, multiples of 32.
        min_size: target shorter side after resizing, pixels.
        max_size: cap on the longer side after resizing, pixels.
        image_mean: per-channel mean of the [0, 1] image.
        image_std: per-channel std.

    Returns:
        ``(images, (h, w))``: (1, 3, H', W') float32 C-contiguous, and (h, w), the resized
        size in pixels (see :func:`preprocess_tensor`).

    Raises:
        ConfigError: the image is not an (H, W, 3) uint8 array, or does not fit in ``size``.
    """
    import torch

    if not isinstance(image, np.ndarray):
        raise ConfigError(f"expected an (H, W, 3) uint8 RGB image as a numpy array, got {type(image).__name__}")
    _check_image(image)
    writable = image.flags.writeable and image.flags.c_contiguous
    tensor = torch.from_numpy(image if writable else np.array(image, order="C"))
    out, resized = preprocess_tensor(
        tensor, size=size, min_size=min_size, max_size=max_size, image_mean=image_mean, image_std=image_std
    )
    return out.numpy(), resized
