"""numpy images <-> QImage, without a copy where Qt allows it.

The view paints BGRA frames wrapped as ``QImage.Format_RGB32`` (Qt's native 32-bit
layout on little-endian machines: bytes B, G, R, 0xFF), which Qt's raster engine
scales and draws several times faster than 24-bit RGB.
"""

from __future__ import annotations

import sys

import numpy as np
from PyQt6.QtGui import QImage

__all__ = ["wrap_bgra", "wrap_rgb", "qimage_to_rgb"]


def wrap_bgra(array: np.ndarray) -> QImage:
    """Wrap an (H, W, 4) uint8 BGRA array as a ``Format_RGB32`` QImage without copying.

    The QImage reads ``array``'s memory: keep the array alive (and unchanged) as long
    as the image is used.

    Args:
        array: (H, W, 4) uint8, C-contiguous rows, bytes in B, G, R, A order.

    Returns:
        A QImage sharing ``array``'s memory.

    Raises:
        ValueError: wrong shape, dtype or layout, or a big-endian machine.
    """
    if array.ndim != 3 or array.shape[2] != 4 or array.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 4) uint8 BGRA array, got {array.shape} {array.dtype}")
    if array.strides[1:] != (4, 1):
        raise ValueError("the BGRA array must have contiguous pixels (strides (row, 4, 1))")
    if sys.byteorder != "little":  # pragma: no cover - no big-endian machine runs this
        raise ValueError("Format_RGB32 is BGRA in memory only on little-endian machines")
    h, w = array.shape[:2]
    return QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGB32)


def wrap_rgb(array: np.ndarray) -> QImage:
    """Wrap an (H, W, 3) uint8 RGB array as a ``Format_RGB888`` QImage without copying.

    Keep ``array`` alive as long as the image is used.

    Raises:
        ValueError: wrong shape, dtype or layout.
    """
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {array.shape} {array.dtype}")
    if array.strides[1:] != (3, 1):
        raise ValueError("the RGB array must have contiguous pixels (strides (row, 3, 1))")
    h, w = array.shape[:2]
    return QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGB888)


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """Copy any QImage into a new (H, W, 3) uint8 RGB array (alpha dropped).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = rgb.height(), rgb.width(), rgb.bytesPerLine()
    ptr = rgb.constBits()
    ptr.setsize(rgb.sizeInBytes())
    rows = np.frombuffer(ptr, np.uint8).reshape(h, bpl)
    return rows[:, : w * 3].reshape(h, w, 3).copy()
