"""Postprocessing shared by every backend, the renderer and the sinks (numpy only).

Every backend (torch, onnxruntime, tensorrt) stops at :class:`RawDetections`, the
raw head outputs in network-input pixels, and this module turns them into
:class:`~streamseg.types.Instances` the same way torchvision's
``RoIHeads`` + ``GeneralizedRCNNTransform.postprocess`` do, so all backends agree.

Mask pasting follows torchvision's ``paste_masks_in_image``
(torchvision/models/detection/roi_heads.py): the M x M mask is padded by one
cell of zeros, its box is scaled by (M + 2) / M about the centre and truncated
to integer pixels, and the padded mask is resized bilinearly (half-pixel
centres, ``align_corners=False``) to the box size and clipped to the image.
OpenCV's bilinear resize rounds differently from ATen's by about 1e-6, so a pasted
pixel within that of the 0.5 threshold may land on the other side (ATen itself
rounds differently with the output width, through its vectorised loops).

Keypoint decoding follows torchvision's ``heatmaps_to_keypoints``: each RoI's
heatmaps are upsampled bicubically (``F.interpolate(mode="bicubic",
align_corners=False)``, Keys' kernel with A = -0.75, clamped border taps) to the
RoI's size rounded up, and the peak of each gives the keypoint. To make the peak
*exactly* torch's, the bicubic arithmetic is replayed in float32 in ATen's order
(aten/src/ATen/native/cpu/UpSampleKernel.cpp, ``HelperInterpCubic`` and
``InterpolateNonSeparable``), including the fused multiply-adds that the
compiler emits in torch's AVX2/AVX512 CPU kernels (emulated in float64; verified
bit for bit against torch 2.15 on 92 million values). ``fma=False`` replays
torch's DEFAULT-capability (no FMA) kernel instead. The two differ by an ulp or
two, which can only move a peak between near-tied pixels.
"""

from __future__ import annotations

from collections.abc import Collection

import dataclasses

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from streamseg.types import MASK_SIZE, Instances

__all__ = [
    "BICUBIC_FMA",
    "RawDetections",
    "box_iou",
    "heatmaps_to_keypoints",
    "merge_keypoints",
    "paste_mask_in_box",
    "paste_masks",
    "postprocess",
    "resize_boxes",
    "resize_keypoints",
    "upsample_bicubic",
]

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


# --------------------------------------------------------------------------------------
# Raw model output
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class RawDetections:
    """Backend-independent model output for one image, before :func:`postprocess`.

    What torchvision's ``RoIHeads`` computes at inference, with nothing pasted or
    decoded and nothing rescaled to the original image. N is the number of
    detections (after torchvision's score threshold, NMS and top-k), M the mask side.

    Attributes:
        boxes: (N, 4) float32 xyxy in network-input (resized) pixels, clipped to
            ``input_size`` (``RoIHeads.postprocess_detections``).
        scores: (N,) float32 class scores (softmax), descending per NMS output order.
        labels: (N,) int64 class indices (COCO ids for the COCO models).
        mask_probs: (N, M, M) float32 mask probabilities of the predicted class (sigmoid
            of the label's channel, as ``maskrcnn_inference``), or None.
        keypoint_heatmaps: (N, K, Hm, Wm) float32 keypoint logits (``keypoint_predictor``
            output, 56 x 56 for torchvision's Keypoint R-CNN), or None.
        input_size: (h, w) of the resized image the boxes refer to, pixels (before
            padding to a multiple of 32).
        image_size: (H, W) of the original image, pixels.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    mask_probs: np.ndarray | None
    keypoint_heatmaps: np.ndarray | None
    input_size: tuple[int, int]
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = boxes.shape[0]
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if scores.shape[0] != n or labels.shape[0] != n:
            raise ValueError(f"boxes ({n}), scores ({scores.shape[0]}) and labels ({labels.shape[0]}) differ")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)
        if self.mask_probs is not None:
            masks = np.asarray(self.mask_probs, dtype=np.float32)
            if n == 0 and masks.size == 0:
                masks = masks.reshape(0, MASK_SIZE, MASK_SIZE) if masks.ndim != 3 else masks
            if masks.ndim != 3 or masks.shape[0] != n:
                raise ValueError(f"mask_probs must be (N={n}, M, M), got {masks.shape}")
            object.__setattr__(self, "mask_probs", masks)
        if self.keypoint_heatmaps is not None:
            maps = np.asarray(self.keypoint_heatmaps, dtype=np.float32)
            if maps.ndim != 4 or maps.shape[0] != n:
                raise ValueError(f"keypoint_heatmaps must be (N={n}, K, Hm, Wm), got {maps.shape}")
            object.__setattr__(self, "keypoint_heatmaps", maps)
        object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


# --------------------------------------------------------------------------------------
# Bicubic upsampling exactly as torch's CPU kernel, and keypoint decoding
# --------------------------------------------------------------------------------------

#: Default arithmetic of :func:`upsample_bicubic` / :func:`heatmaps_to_keypoints`: True
#: replays torch's AVX2 / AVX512 CPU kernel (fused multiply-adds), False its DEFAULT kernel.
BICUBIC_FMA = True

_F32 = np.float32
_CUBIC_A = _F32(-0.75)  # ATen get_cubic_upsample_coefficients: A = -0.75 (as OpenCV)
_EXACT_CHUNK = 1 << 18  # candidate pixels evaluated at once in the exact pass


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 ``a * b + c`` with a single rounding (a fused multiply-add), via float64."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(_F32)


def _cubic_taps(in_size: int, out_size: int, fma: bool) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights of 1-D bicubic resampling, as ATen computes them.

    ``HelperInterpCubic::compute_indices_weights`` with ``align_corners=False`` and no
    explicit scale, all in float32: ``scale = in / out``; ``src = scale * (dst + 0.5) - 0.5``
    (``area_pixel_compute_source_index``, cubic: no clamp at 0); ``i0 = min(floor(src),
    in - 1)``, ``t = clamp(src - i0, 0, 1)`` (``guard_index_and_lambda``); weights
    ``[k2(t + 1), k1(t), k1(1 - t), k2(2 - t)]`` with Keys' kernel, A = -0.75
    (``get_cubic_upsample_coefficients``); taps ``i0 - 1 .. i0 + 2`` clamped to [0, in - 1].
    With ``fma`` the multiply-adds torch's AVX2/AVX512 build fuses are fused here too:
    ``src``, and the first step of ``k1`` and the first two steps of ``k2`` (Horner form).

    Returns:
        ``(indices, weights)``: (4, out_size) int64 and (4, out_size) float32.
    """
    scale = _F32(in_size) / _F32(out_size)
    dst = np.arange(out_size, dtype=_F32) + _F32(0.5)
    src = _fma(scale, dst, _F32(-0.5)) if fma else scale * dst - _F32(0.5)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    t = np.clip(src - i0.astype(_F32), _F32(0.0), _F32(1.0))
    a = _CUBIC_A

    def k1(x: np.ndarray) -> np.ndarray:  # ((A + 2) x - (A + 3)) x x + 1, for |x| <= 1
        if fma:
            return (_fma(a + _F32(2), x, -(a + _F32(3))) * x) * x + _F32(1)
        return (((a + _F32(2)) * x - (a + _F32(3))) * x) * x + _F32(1)

    def k2(x: np.ndarray) -> np.ndarray:  # ((A x - 5A) x + 8A) x - 4A, for 1 < |x| < 2
        if fma:
            return _fma(_fma(a, x, -_F32(5) * a), x, _F32(8) * a) * x - _F32(4) * a
        return ((a * x - _F32(5) * a) * x + _F32(8) * a) * x - _F32(4) * a

    t2 = _F32(1) - t
    weights = np.stack([k2(t + _F32(1)), k1(t), k1(t2), k2(t2 + _F32(1))]).astype(_F32)
    indices = np.clip(i0[None, :] + np.arange(-1, 3)[:, None], 0, in_size - 1)
    return indices, weights


def _accumulate(values: list[np.ndarray], weights: list[np.ndarray], fma: bool) -> np.ndarray:
    """Sum of 4 products in ATen's order (``InterpolateNonSeparable::eval``).

    Without FMA: ``((v0 w0 + v1 w1) + v2 w2) + v3 w3``. torch's AVX2/AVX512 builds
    contract it to ``fma(v3, w3, fma(v2, w2, fma(v0, w0, v1 w1)))`` (found by
    comparing bit patterns with torch; the compiler fuses the first product, not the
    second, of ``v0 w0 + v1 w1``).
    """
    if fma:
        out = values[1] * weights[1]
        out = _fma(values[0], weights[0], out)
        out = _fma(values[2], weights[2], out)
        return _fma(values[3], weights[3], out)
    out = values[0] * weights[0]
    for v, w in zip(values[1:], weights[1:]):
        out = out + v * w
    return out


def upsample_bicubic(maps: np.ndarray, size: tuple[int, int], *, fma: bool = BICUBIC_FMA) -> np.ndarray:
    """Bicubic resize bit-identical to torch's CPU ``F.interpolate(mode="bicubic", align_corners=False)``.

    Separable in the same order as ATen's kernel: for each output pixel, four
    horizontal 4-tap sums on the four source rows, then one vertical 4-tap sum of
    those (ATen nests height outside width; the horizontal sums of a source row do
    not depend on the output row, so computing them once per row is the same arithmetic).

    Args:
        maps: (K, H, W) float32.
        size: (out_h, out_w) in pixels.
        fma: replay torch's AVX2/AVX512 kernel (True) or its DEFAULT kernel (False).

    Returns:
        (K, out_h, out_w) float32. Memory K * out_h * out_w * 8 bytes at the peak:
        for keypoint decoding :func:`heatmaps_to_keypoints` avoids the full map.
    """
    m = np.asarray(maps, dtype=_F32)
    out_h, out_w = int(size[0]), int(size[1])
    ix, wx = _cubic_taps(m.shape[-1], out_w, fma)
    iy, wy = _cubic_taps(m.shape[-2], out_h, fma)
    rows = _accumulate([m[:, :, ix[j]] for j in range(4)], [wx[j] for j in range(4)], fma)
    return _accumulate([rows[:, iy[j], :] for j in range(4)], [wy[j][:, None] for j in range(4)], fma)


def _bicubic_values_at(
    m: np.ndarray,
    k: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    taps_x: tuple[np.ndarray, np.ndarray],
    taps_y: tuple[np.ndarray, np.ndarray],
    fma: bool,
) -> np.ndarray:
    """Exact :func:`upsample_bicubic` values at output pixels (k, y, x), each (C,) -> (C,) float32."""
    ix, wx = taps_x
    iy, wy = taps_y
    out = np.empty(k.shape[0], dtype=_F32)
    for s in range(0, k.shape[0], _EXACT_CHUNK):
        kk, yy, xx = k[s : s + _EXACT_CHUNK], y[s : s + _EXACT_CHUNK], x[s : s + _EXACT_CHUNK]
        wxs = [wx[i, xx] for i in range(4)]
        row_sums = [_accumulate([m[kk, iy[j, yy], ix[i, xx]] for i in range(4)], wxs, fma) for j in range(4)]
        out[s : s + _EXACT_CHUNK] = _accumulate(row_sums, [wy[j, yy] for j in range(4)], fma)
    return out


def _bicubic_argmax(m: np.ndarray, out_h: int, out_w: int, fma: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel peak of the bicubic upsampling of ``m``, as ``argmax`` of torch's map.

    Two passes: a float32 matrix product (``Wy @ m @ Wx``, error about 1e-6 of max|m|)
    picks every pixel within 1e-4 * max|m| of its channel's approximate peak, then
    those candidates are evaluated exactly (:func:`_bicubic_values_at`) and the first
    (row-major) pixel with the largest exact value wins, as ``torch.argmax``. The
    tolerance is 40x the worst-case error, so the true peak is always a candidate.

    Args:
        m: (K, H, W) float32 heatmaps.
        out_h: output height, pixels.
        out_w: output width, pixels.
        fma: see :func:`upsample_bicubic`.

    Returns:
        ``(flat_index, value)``: (K,) int64 index ``y * out_w + x`` and (K,) float32
        upsampled value at the peak.
    """
    num_k, h, w = m.shape
    taps_x = _cubic_taps(w, out_w, fma)
    taps_y = _cubic_taps(h, out_h, fma)
    mat_x = np.zeros((w, out_w), dtype=_F32)
    np.add.at(mat_x, (taps_x[0], np.arange(out_w)[None, :]), taps_x[1])
    mat_y = np.zeros((out_h, h), dtype=_F32)
    np.add.at(mat_y, (np.arange(out_h)[None, :], taps_y[0]), taps_y[1])
    approx = np.matmul(mat_y, np.matmul(m, mat_x)).reshape(num_k, -1)

    flat = np.zeros(num_k, dtype=np.int64)
    value = np.zeros(num_k, dtype=_F32)
    finite = np.isfinite(m).reshape(num_k, -1).all(axis=1)
    for c in np.flatnonzero(~finite):  # NaN / inf maps: evaluate fully, argmax as torch (NaN wins)
        full = upsample_bicubic(m[c : c + 1], (out_h, out_w), fma=fma).reshape(-1)
        flat[c] = int(np.argmax(full))
        value[c] = full[flat[c]]
    good = np.flatnonzero(finite)
    if good.size == 0:
        return flat, value
    sub = approx if good.size == num_k else approx[good]
    tol = _F32(1e-4) * np.abs(m[good]).reshape(good.size, -1).max(axis=1) + _F32(1e-30)
    sel_k, sel_pos = np.nonzero(sub >= (sub.max(axis=1) - tol)[:, None])
    chan = good[sel_k]
    exact = _bicubic_values_at(m, chan, sel_pos // out_w, sel_pos % out_w, taps_x, taps_y, fma)
    order = np.lexsort((sel_pos, -exact, chan))  # by channel, then value descending, then index
    first = order[np.r_[True, chan[order][1:] != chan[order][:-1]]]
    flat[chan[first]] = sel_pos[first]
    value[chan[first]] = exact[first]
    return flat, value


def heatmaps_to_keypoints(maps: np.ndarray, rois: np.ndarray, *, fma: bool = BICUBIC_FMA) -> np.ndarray:
    """Keypoint locations and scores from heatmap logits (torchvision's ``heatmaps_to_keypoints``).

    For RoI i: ``w = max(x2 - x1, 1)``, ``h = max(y2 - y1, 1)`` (float32); the maps are
    upsampled bicubically to ``(ceil(h), ceil(w))`` pixels; the peak (``argmax``, first
    in row-major order on ties) at integer ``(x_int, y_int)`` gives
    ``x = (x_int + 0.5) * (w / ceil(w)) + x1`` and ``y = (y_int + 0.5) * (h / ceil(h)) + y1``
    (Heckbert 1990, c = d + 0.5), and the score is the upsampled logit at the peak.

    Args:
        maps: (N, K, Hm, Wm) float32 heatmap logits (the keypoint predictor's output).
        rois: (N, 4) float32 xyxy boxes the heatmaps belong to, pixels.
        fma: see :func:`upsample_bicubic`.

    Returns:
        (N, K, 3) float32 ``(x, y, score)`` in the RoIs' pixel frame. torchvision returns
        ``(x, y, 1)`` and the scores separately; here the score replaces the 1.
    """
    maps = np.asarray(maps, dtype=_F32)
    rois = np.asarray(rois, dtype=_F32).reshape(-1, 4)
    n, k = maps.shape[0], maps.shape[1]
    out = np.zeros((n, k, 3), dtype=_F32)
    if n == 0:
        return out
    widths = np.maximum(rois[:, 2] - rois[:, 0], _F32(1))
    heights = np.maximum(rois[:, 3] - rois[:, 1], _F32(1))
    widths_ceil = np.ceil(widths)
    heights_ceil = np.ceil(heights)
    for i in range(n):
        out_w, out_h = int(widths_ceil[i]), int(heights_ceil[i])
        flat, value = _bicubic_argmax(maps[i], out_h, out_w, fma)
        x_int = (flat % out_w).astype(_F32)
        y_int = (flat // out_w).astype(_F32)
        out[i, :, 0] = (x_int + _F32(0.5)) * (widths[i] / _F32(out_w)) + rois[i, 0]
        out[i, :, 1] = (y_int + _F32(0.5)) * (heights[i] / _F32(out_h)) + rois[i, 1]
        out[i, :, 2] = value
    return out


# --------------------------------------------------------------------------------------
# From raw detections to Instances
# --------------------------------------------------------------------------------------


def _ratios(from_size: tuple[int, int], to_size: tuple[int, int]) -> tuple[np.float32, np.float32]:
    """(ratio_h, ratio_w) = to / from per axis in float32, as torchvision's ``resize_boxes``."""
    return _F32(to_size[0]) / _F32(from_size[0]), _F32(to_size[1]) / _F32(from_size[1])


def resize_boxes(boxes: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Rescale xyxy boxes between image sizes (torchvision ``transform.resize_boxes``).

    Args:
        boxes: (N, 4) float32 xyxy pixels in an image of ``from_size`` (h, w).
        from_size: (h, w) the boxes refer to, pixels.
        to_size: (H, W) to rescale to, pixels.

    Returns:
        (N, 4) float32: x multiplied by ``float32(W) / float32(w)``, y by ``H / h``.
    """
    ratio_h, ratio_w = _ratios(from_size, to_size)
    out = np.array(boxes, dtype=_F32, copy=True).reshape(-1, 4)
    out[:, 0::2] *= ratio_w
    out[:, 1::2] *= ratio_h
    return out


def resize_keypoints(
    keypoints: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> np.ndarray:
    """Rescale (x, y, score) keypoints between image sizes (torchvision ``transform.resize_keypoints``).

    Args:
        keypoints: (N, K, 3) float32 (x, y, score), pixels in an image of ``from_size``.
        from_size: (h, w), pixels.
        to_size: (H, W), pixels.

    Returns:
        (N, K, 3) float32 with x, y rescaled (float32 ratios) and scores unchanged.
    """
    ratio_h, ratio_w = _ratios(from_size, to_size)
    out = np.array(keypoints, dtype=_F32, copy=True)
    out[..., 0] *= ratio_w
    out[..., 1] *= ratio_h
    return out


def postprocess(
    raw: RawDetections,
    *,
    score_thresh: float = 0.0,
    keypoint_labels: Collection[int] | None = None,
    fma: bool = BICUBIC_FMA,
) -> Instances:
    """Turn raw head outputs into :class:`Instances` in original-image pixels.

    Steps, as torchvision's inference path:

    1. keep detections with ``score > score_thresh`` (the comparison of
       ``RoIHeads.postprocess_detections``; backends already apply the same threshold
       there, so this is a no-op for them and a filter for callers that raise it);
    2. decode keypoints on the resized-image boxes (``keypointrcnn_inference`` ->
       :func:`heatmaps_to_keypoints`);
    3. rescale boxes and keypoints from ``input_size`` to ``image_size``
       (``GeneralizedRCNNTransform.postprocess``: :func:`resize_boxes`,
       :func:`resize_keypoints`). Masks stay M x M in the box frame (never pasted).

    Args:
        raw: one image's raw detections.
        score_thresh: minimum score (exclusive), in [0, 1].
        keypoint_labels: the labels that have keypoints (e.g. person); the keypoint rows
            of other labels are NaN. A model whose keypoint head runs on every detection
            (the demo model: masks and keypoints in one ROI heads) predicts keypoints for
            balls and cars too, which mean nothing. None keeps every row.
        fma: see :func:`upsample_bicubic`.

    Returns:
        Instances with masks (N, M, M) or None, keypoints (N, K, 3) or None, track ids -1.
    """
    keep = raw.scores > _F32(score_thresh)
    boxes = raw.boxes[keep]
    keypoints = None
    if raw.keypoint_heatmaps is not None:
        keypoints = heatmaps_to_keypoints(raw.keypoint_heatmaps[keep], boxes, fma=fma)
        keypoints = resize_keypoints(keypoints, raw.input_size, raw.image_size)
        if keypoint_labels is not None:
            keypoints[~np.isin(raw.labels[keep], np.asarray(list(keypoint_labels), np.int64))] = np.nan
    return Instances(
        image_size=raw.image_size,
        boxes=resize_boxes(boxes, raw.input_size, raw.image_size),
        scores=raw.scores[keep],
        labels=raw.labels[keep],
        masks=None if raw.mask_probs is None else raw.mask_probs[keep],
        keypoints=keypoints,
    )


# --------------------------------------------------------------------------------------
# Combining a mask model with a keypoint model
# --------------------------------------------------------------------------------------


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (torchvision ``ops.box_iou``), numpy.

    Args:
        boxes1: (N, 4) xyxy pixels.
        boxes2: (M, 4) xyxy pixels.

    Returns:
        (N, M) float64 IoU in [0, 1]; 0 where the union is empty.
    """
    a = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def merge_keypoints(
    instances: Instances, kp_instances: Instances, *, person_label: int = 1, iou_thresh: float = 0.5
) -> Instances:
    """Attach a keypoint model's keypoints to a mask model's person instances.

    Person instances of ``instances`` and person detections of ``kp_instances`` are
    paired one-to-one by maximum total box IoU over the pairs with IoU >= ``iou_thresh``
    (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``); the others stay
    unpaired. A paired person takes the keypoints; unpaired persons and all other
    classes get a NaN keypoint row ("no keypoints"). Keypoint-model persons left
    unpaired are appended (their box, score and keypoints, label ``person_label``, an
    all-zero mask, track id -1). Existing keypoints of ``instances`` are replaced.

    Args:
        instances: the mask model's instances (any labels; masks may be None).
        kp_instances: the keypoint model's instances on the same image, with keypoints.
        person_label: the person label in both label spaces (1: COCO id, and index 1
            of torchvision's Keypoint R-CNN categories).
        iou_thresh: minimum box IoU of a pair, in [0, 1].

    Returns:
        Instances with keypoints (N', K, 3), sorted by score descending (stable).

    Raises:
        ValueError: ``kp_instances`` has no keypoints, or the image sizes differ.
    """
    if kp_instances.keypoints is None:
        raise ValueError("kp_instances has no keypoints")
    if tuple(instances.image_size) != tuple(kp_instances.image_size):
        raise ValueError(f"image sizes differ: {instances.image_size} vs {kp_instances.image_size}")
    num_kp = kp_instances.keypoints.shape[1]
    keypoints = np.full((len(instances), num_kp, 3), np.nan, dtype=_F32)
    persons = np.flatnonzero(instances.labels == person_label)
    kp_persons = np.flatnonzero(kp_instances.labels == person_label)
    used = np.zeros(len(kp_instances), dtype=bool)
    if persons.size and kp_persons.size:
        iou = box_iou(instances.boxes[persons], kp_instances.boxes[kp_persons])
        iou = np.where(iou >= iou_thresh, iou, 0.0)  # pairs below the threshold count for nothing
        rows, cols = linear_sum_assignment(iou, maximize=True)
        ok = iou[rows, cols] > 0
        keypoints[persons[rows[ok]]] = kp_instances.keypoints[kp_persons[cols[ok]]]
        used[kp_persons[cols[ok]]] = True
    extra = kp_persons[~used[kp_persons]]

    masks = instances.masks
    if masks is not None:
        masks = np.concatenate([masks, np.zeros((extra.size, *masks.shape[1:]), dtype=_F32)])
    merged = Instances(
        image_size=instances.image_size,
        boxes=np.concatenate([instances.boxes, kp_instances.boxes[extra]]),
        scores=np.concatenate([instances.scores, kp_instances.scores[extra]]),
        labels=np.concatenate([instances.labels, np.full(extra.size, person_label, dtype=np.int64)]),
        masks=masks,
        keypoints=np.concatenate([keypoints, kp_instances.keypoints[extra]]),
        track_ids=np.concatenate([instances.track_ids, np.full(extra.size, -1, dtype=np.int64)]),
    )
    return merged[np.argsort(-merged.scores, kind="stable")]
