"""Postprocessing shared by every backend, the renderer and the sinks (numpy only).

Mask pasting follows torchvision's ``paste_masks_in_image``
(torchvision/models/detection/roi_heads.py): the M x M mask is padded by one
cell of zeros, its box is scaled by (M + 2) / M about the centre and truncated
to integer pixels, and the padded mask is resized bilinearly (half-pixel
centres, ``align_corners=False``) to the box size and clipped to the image.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["paste_mask_in_box", "paste_masks"]

_PADDING = 1  # cells of zero padding around the mask, as torchvision's expand_masks(padding=1)


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
        image as torchvision's ``paste_masks_in_image`` for this instance.
    """
    im_h, im_w = int(image_size[0]), int(image_size[1])
    m = np.asarray(mask, dtype=np.float32)
    size = m.shape[-1]
    padded = np.pad(m, _PADDING)
    scale = np.float32((size + 2 * _PADDING) / size)
    b = np.asarray(box, dtype=np.float32)
    # expand_boxes, in float32 as torchvision computes it, then .to(int64) (truncation).
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
    if x1 <= x0 or y1 <= y0:
        return (0, 0, 0, 0), np.zeros((0, 0), np.float32)
    resized = cv2.resize(padded, (w, h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 1:  # cv2 drops a unit axis for 1-pixel sizes
        resized = resized.reshape(h, w)
    region = resized[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
    return (y0, y1, x0, x1), np.ascontiguousarray(region, dtype=np.float32)


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
