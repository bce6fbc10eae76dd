"""Box-frame masks pasted into the image, per box crop: torchvision's ``paste_masks_in_image``.

Mask pasting follows torchvision's ``paste_masks_in_image``
(torchvision/models/detection/roi_heads.py): the M x M mask is padded by one
cell of zeros, its box is scaled by (M + 2) / M about the centre and truncated
to integer pixels (:func:`paste_window`), and the padded mask is resized bilinearly
(half-pixel centres, ``align_corners=False``) to the box size and clipped to the image.
On the CPU the resize is OpenCV's (:func:`paste_mask_in_box`): it rounds differently
from ATen's by about 1e-6, so a pasted pixel within that of the 0.5 threshold may land
on the other side (ATen itself rounds differently with the output width, through its
vectorised loops). On a GPU backend's device it is ATen's own
(:func:`paste_crops_tensor`). No full-frame mask is made except by :func:`paste_masks`.

:func:`mask_crops` gives each frame's binarised crops once, kept with the
:class:`~streamseg.types.Instances` for the renderer and the JSONL writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from streamseg.types import Instances

if TYPE_CHECKING:
    import torch

__all__ = ["mask_crops", "paste_crops_tensor", "paste_mask_in_box", "paste_masks", "paste_window"]

_PADDING = 1  # cells of zero padding around the mask, as torchvision's expand_masks(padding=1)


def paste_window(box: np.ndarray, mask_size: int, image_size: tuple[int, int]) -> tuple[int, int, int, int, int, int, int, int]:
    """Where torchvision pastes one box's mask: the expanded integer box and its part inside the image.

    torchvision's ``paste_masks_in_image``: the M x M mask is padded by one cell
    (``expand_masks``), the box is scaled by ``(M + 2) / M`` about its centre in float32
    (``expand_boxes``) and truncated to integers (``.to(torch.int64)``), and the padded mask
    is resized to that box's ``w x h = (x1 - x0 + 1) x (y1 - y0 + 1)`` pixels.

    Args:
        box: (4,) float xyxy in image pixels.
        mask_size: M.
        image_size: (H, W) of the image, pixels.

    Returns:
        ``(bx0, by0, w, h, y0, y1, x0, x1)``: the expanded box's corner and size (the
        resized mask's frame), and the half-open region of the image it covers (empty
        when ``x1 <= x0`` or ``y1 <= y0``).
    """
    im_h, im_w = int(image_size[0]), int(image_size[1])
    scale = np.float32((mask_size + 2 * _PADDING) / mask_size)
    b = np.asarray(box, dtype=np.float32)
    w_half = (b[2] - b[0]) * np.float32(0.5) * scale
    h_half = (b[3] - b[1]) * np.float32(0.5) * scale
    x_c = (b[2] + b[0]) * np.float32(0.5)
    y_c = (b[3] + b[1]) * np.float32(0.5)
    bx0, bx1 = int(x_c - w_half), int(x_c + w_half)
    by0, by1 = int(y_c - h_half), int(y_c + h_half)
    w = max(bx1 - bx0 + 1, 1)
    h = max(by1 - by0 + 1, 1)
    x0, x1 = max(bx0, 0), min(bx1 + 1, im_w)
    y0, y1 = max(by0, 0), min(by1 + 1, im_h)
    return bx0, by0, w, h, y0, y1, x0, x1


def paste_mask_in_box(
    mask: np.ndarray, box: np.ndarray, image_size: tuple[int, int]
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Paste one box-frame mask into its image region, without a full-size array.

    Args:
        mask: (M, M) float32 probabilities in the box frame.
        box: (4,) float xyxy in image pixels.
        image_size: (H, W) of the image, in pixels.

    Returns:
        ``((y0, y1, x0, x1), region)``: the clipped image region (half-open
        pixel ranges, possibly empty) and (y1 - y0, x1 - x0) float32 mask
        probabilities for it. ``full[y0:y1, x0:x1] = region`` gives the same
        image as torchvision's ``paste_masks_in_image`` for this instance
        (:func:`paste_window`; the resize is ``cv2.resize`` bilinear, torchvision's
        ``F.interpolate(align_corners=False)`` up to float rounding).
    """
    m = np.asarray(mask, dtype=np.float32)
    bx0, by0, w, h, y0, y1, x0, x1 = paste_window(box, m.shape[-1], image_size)
    if x1 <= x0 or y1 <= y0:
        return (0, 0, 0, 0), np.zeros((0, 0), np.float32)
    padded = cv2.copyMakeBorder(m, _PADDING, _PADDING, _PADDING, _PADDING, cv2.BORDER_CONSTANT, value=0.0)
    resized = cv2.resize(padded, (w, h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 1:  # cv2 drops a unit axis for 1-pixel sizes
        resized = resized.reshape(h, w)
    region = resized[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
    return (y0, y1, x0, x1), np.ascontiguousarray(region, dtype=np.float32)


def paste_crops_tensor(
    masks: torch.Tensor, boxes: np.ndarray, image_size: tuple[int, int], threshold: float = 0.5
) -> tuple[tuple[tuple[int, int, int, int], np.ndarray], ...]:
    """:func:`mask_crops` computed on the masks' device: paste, threshold, one copy of uint8 crops back.

    For GPU backends: the (N, M, M) probabilities stay on the GPU, each is pasted there
    exactly as torchvision's ``paste_masks_in_image`` does it (pad one cell,
    ``F.interpolate(mode="bilinear", align_corners=False)`` to the expanded box of
    :func:`paste_window`), cut to its region of the image and binarised; all crops are
    concatenated and copied to the host in one transfer.

    Args:
        masks: Tensor[N, M, M] float mask probabilities in the box frame, on any device.
        boxes: (N, 4) float32 xyxy boxes in image pixels (the Instances' boxes).
        image_size: (H, W) of the image, pixels.
        threshold: probability above which a pixel is inside.

    Returns:
        N pairs ``((y0, y1, x0, x1), crop)`` as :func:`mask_crops` gives them (read-only
        uint8 crops; an empty region for a box outside the image).
    """
    import torch
    from torch.nn import functional as F

    windows = [paste_window(box, int(masks.shape[-1]), image_size) for box in np.asarray(boxes, np.float32)]
    pieces = []
    with torch.inference_mode():
        for mask, (bx0, by0, w, h, y0, y1, x0, x1) in zip(masks, windows):
            if x1 <= x0 or y1 <= y0:
                continue
            padded = F.pad(mask.to(torch.float32)[None, None], (_PADDING,) * 4)
            up = F.interpolate(padded, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            pieces.append((up[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] > threshold).to(torch.uint8).reshape(-1))
        flat = torch.cat(pieces).cpu().numpy() if pieces else np.zeros(0, np.uint8)
    crops, start = [], 0
    for bx0, by0, w, h, y0, y1, x0, x1 in windows:
        if x1 <= x0 or y1 <= y0:
            crop, region = np.zeros((0, 0), np.uint8), (0, 0, 0, 0)
        else:
            size = (y1 - y0) * (x1 - x0)
            crop, region = flat[start : start + size].reshape(y1 - y0, x1 - x0), (y0, y1, x0, x1)
            start += size
        crop.flags.writeable = False
        crops.append((region, crop))
    return tuple(crops)


def mask_crops(instances: Instances, threshold: float = 0.5) -> tuple[tuple[tuple[int, int, int, int], np.ndarray], ...]:
    """Each instance's mask pasted into its box's region of the image and binarised.

    At 0.5 (the renderer's and the JSONL's threshold) the crops are
    :attr:`Instances.mask_crops <streamseg.types.Instances.mask_crops>`: filled on the
    device by a GPU backend, or pasted here on first use (:func:`paste_mask_in_box`,
    torchvision's pixels) and kept there for the frame's other consumers. Other
    thresholds are pasted each time.

    Args:
        instances: N instances with masks.
        threshold: probability above which a pixel is inside (torchvision: 0.5).

    Returns:
        N pairs ``((y0, y1, x0, x1), crop)``: the clipped region (half-open pixel ranges,
        possibly empty) and its (y1 - y0, x1 - x0) read-only uint8 mask, 1 inside, 0 outside.

    Raises:
        ValueError: ``instances`` has no masks.
    """
    if instances.masks is None:
        raise ValueError("these instances have no masks")
    cached = threshold == 0.5
    if cached and instances.mask_crops is not None:
        return instances.mask_crops
    crops = []
    for mask, box in zip(instances.masks, instances.boxes):
        region, probs = paste_mask_in_box(mask, box, instances.image_size)
        crop = (probs > threshold).view(np.uint8)
        crop.flags.writeable = False
        crops.append((region, crop))
    crops = tuple(crops)
    if cached:  # derived data of immutable arrays, set once (two threads racing set the same value)
        object.__setattr__(instances, "mask_crops", crops)
    return crops


def paste_masks(
    masks: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int], threshold: float | None = 0.5
) -> np.ndarray:
    """Paste box-frame masks into full-size image masks.

    Args:
        masks: (N, M, M) float32 probabilities in the box frame.
        boxes: (N, 4) float xyxy in image pixels.
        image_size: (H, W) in pixels.
        threshold: probability above which a pixel is inside (torchvision's
            convention is ``> 0.5``); None returns the pasted probabilities.

    Returns:
        (N, H, W) bool masks, or float32 probabilities when ``threshold`` is None.
        Costs N * H * W memory: for per-instance work use :func:`paste_mask_in_box`.
    """
    h, w = int(image_size[0]), int(image_size[1])
    n = len(masks)
    out = np.zeros((n, h, w), dtype=np.float32 if threshold is None else bool)
    for i in range(n):
        (y0, y1, x0, x1), region = paste_mask_in_box(masks[i], boxes[i], (h, w))
        if region.size:
            out[i, y0:y1, x0:x1] = region if threshold is None else region > threshold
    return out
