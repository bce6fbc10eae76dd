"""The export-friendly Mask R-CNN / Keypoint R-CNN inference graph.

torchvision's ``model(images)`` is written for eager training and inference: a list of
images in, a list of dicts out, Python loops over images and FPN levels, RoIAlign
hidden in ``MultiScaleRoIAlign`` (whose ONNX export leaves the level choice to
data-dependent gathers and RoiAlign attributes to each runtime's defaults).
:class:`MaskRCNNGraph` is the same computation as one module with tensor inputs and
outputs for one network-input size:

``images`` (1, 3, H, W) float32, ``image_size`` (2,) float32, ``score_thresh`` (1,) float32
    -> ``boxes`` (D, 4), ``scores`` (D,), ``labels`` (D,), ``num_detections`` (1,),
    ``mask_probs`` (D, 28, 28) and / or ``keypoint_heatmaps`` (D, 17, 56, 56).

It wraps the torchvision model's own modules (backbone + FPN, RPN head, box head and
predictor, mask head and predictor, keypoint head and predictor), so every
torchvision state dict the registry knows (``maskrcnn_resnet50_fpn``, ``_v2``,
``keypointrcnn_resnet50_fpn`` and the ``demo`` model) loads unchanged, and reproduces
the eval branch of ``GeneralizedRCNN.forward`` step by step:

1. backbone + FPN on the padded image (``GeneralizedRCNN.forward``);
2. RPN (``RegionProposalNetwork.forward`` / ``filter_proposals``): the objectness and
   box deltas of every anchor; the ``pre_nms_top_n`` best anchors per FPN level
   (1000), decoded (``BoxCoder.decode_single``, weights 1, 1, 1, 1), clipped to the
   image, boxes smaller than 1e-3 px removed, NMS at IoU 0.7 per level, the
   ``post_nms_top_n`` best kept (1000). The anchors depend only on the network-input
   size, so they are computed once and stored as a constant;
3. box head (``RoIHeads.postprocess_detections``): 7 x 7 RoIAlign of the proposals
   (:class:`~streamseg.ops.MultiLevelRoIAlign`), class softmax, per-class box decoding
   (weights 10, 10, 5, 5), clipping, ``score > score_thresh``, boxes smaller than
   1e-2 px removed, NMS at IoU 0.5 per class, the ``detections_per_img`` best kept;
4. mask head: 14 x 14 RoIAlign of the detections, the mask predictor's 28 x 28 logits
   of each detection's class, sigmoid (``maskrcnn_inference``);
5. keypoint head: 14 x 14 RoIAlign, the 56 x 56 keypoint logits
   (``keypoint_predictor``), decoded outside the graph by torchvision's
   ``heatmaps_to_keypoints`` (:func:`~streamseg.postprocess.keypoints_from_heatmaps`).

Two shape modes:

* dynamic (``static=False``; ONNX Runtime and torch): the detection axis D is the number
  of detections above ``score_thresh``, and the mask and keypoint heads (about 1 GFLOP
  per RoI on a ResNet-50 model) run only on those;
* static (``static=True``; TensorRT): the proposals are padded with empty boxes to
  ``post_nms_top_n`` before the box head (an empty box decodes to an empty box, which
  the 1e-2 px size filter drops, so the padding never becomes a detection), and the
  detections are padded with zeros to ``detections_per_img``; ``num_detections`` says
  how many rows are valid. The NMS and score filters inside stay data-dependent
  (ONNX NonMaxSuppression / NonZero, which TensorRT 10 supports).

Preprocessing is outside the graph (:mod:`streamseg.models.preprocess`, as
``GeneralizedRCNNTransform``: resize, normalise, zero-pad at the bottom and right to the
network size); its sizing and preprocessing names are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F

from streamseg.errors import ConfigError
from streamseg.models.preprocess import (
    IMAGE_MEAN,
    IMAGE_STD,
    SIZE_DIVISIBLE,
    network_size_for,
    parse_size,
    preprocess,
    resized_size,
)
from streamseg.ops import MultiLevelRoIAlign

__all__ = [
    "GRAPH_VERSION",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "INPUT_NAMES",
    "SIZE_DIVISIBLE",
    "MaskRCNNGraph",
    "network_size_for",
    "parse_size",
    "preprocess",
    "resized_size",
]

#: Version of the graph's inputs, outputs and semantics; written into exported ONNX files
#: and checked when one is loaded. Bump it when either changes.
GRAPH_VERSION = "3"  # 3: mask probabilities taken with [:, 0] (no ONNX If)
#: Graph input names, in order.
INPUT_NAMES = ("images", "image_size", "score_thresh")


def _clip(boxes: Tensor, image_size: Tensor) -> Tensor:
    """Clip (N, 4) xyxy boxes to [0, w] x [0, h] with ``image_size`` = (h, w) (``clip_boxes_to_image``)."""
    x = boxes[:, 0::2].clamp(min=0.0)
    y = boxes[:, 1::2].clamp(min=0.0)
    x = torch.min(x, image_size[1])
    y = torch.min(y, image_size[0])
    return torch.stack((x, y), dim=2).reshape(-1, 4)


def _non_small(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of boxes with both sides >= ``min_size`` (``remove_small_boxes``)."""
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


def _batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group, indices sorted by decreasing score (``torchvision.ops.batched_nms``).

    Eager: torchvision's own ``batched_nms`` (so results are torchvision's exactly).
    Under ONNX export: its coordinate trick (each group's boxes offset by
    ``group * (max coordinate + 1)`` so groups never overlap), one NonMaxSuppression.
    """
    if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
        return torchvision.ops.batched_nms(boxes, scores, groups, iou_threshold)
    # An empty box set must not break the max (ReduceMax of nothing); the zero never wins
    # because clipped coordinates are >= 0.
    max_coordinate = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    offsets = groups.to(boxes.dtype) * (max_coordinate + 1.0)
    return torchvision.ops.nms(boxes + offsets[:, None], scores, iou_threshold)


class _PerClassNMS(torch.autograd.Function):
    """Per-class NMS as ONE ONNX NonMaxSuppression whose batch axis is the class.

    ONNX's NonMaxSuppression shares boxes across classes, but Mask R-CNN regresses one
    box per class, so the classes go on the batch axis: boxes (K, P, 4), scores
    (K, 1, P). Its cost is K runs over P candidates instead of one run over K * P
    (torchvision's coordinate trick), which for 90 classes x 1000 proposals is the
    difference between about 0.2 s and 8 s in ONNX Runtime. Used only under export;
    eager runs torchvision's ``batched_nms``.
    """

    @staticmethod
    def forward(ctx: Any, boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:  # type: ignore[override]
        num_classes, num = scores.shape[0], scores.shape[2]
        flat_scores = scores[:, 0].reshape(-1)
        valid = torch.where(flat_scores > -0.5)[0]
        groups = torch.arange(num_classes).repeat_interleave(num)
        keep = valid[torchvision.ops.batched_nms(boxes.reshape(-1, 4)[valid], flat_scores[valid], groups[valid], iou_threshold)]
        return torch.stack([keep // num, torch.zeros_like(keep), keep % num], dim=1)

    @staticmethod
    def symbolic(g: Any, boxes: Any, scores: Any, iou_threshold: float) -> Any:
        max_out = g.op("Constant", value_t=torch.tensor([2**62], dtype=torch.int64))
        iou = g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32))
        threshold = g.op("Constant", value_t=torch.tensor([-0.5], dtype=torch.float32))
        return g.op("NonMaxSuppression", boxes, scores, max_out, iou, threshold)


def _pad_rows(x: Tensor, rows: int) -> Tensor:
    """Pad (or cut) the first axis to exactly ``rows`` with zeros (static shapes for TensorRT).

    Written as a scatter of the rows into a zero tensor of the fixed shape (ONNX
    ScatterND), so the output shape is static for every shape inference, unlike a
    concat-then-slice whose length a parser cannot prove.
    """
    x = x[:rows]
    index = torch.ones_like(x.reshape(x.shape[0], -1)[:, 0], dtype=torch.int64).cumsum(0) - 1
    out = x.new_zeros((rows, *x.shape[1:]))
    out[index] = x
    return out


def _roi_align_from(pooler: Any, spatial_scales: Sequence[float]) -> MultiLevelRoIAlign:
    """Our MultiLevelRoIAlign with the settings of a torchvision ``MultiScaleRoIAlign``."""
    output_size = pooler.output_size
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    if list(pooler.featmap_names) != ["0", "1", "2", "3"]:
        raise ConfigError(f"expected a pooler over FPN levels '0'..'3', got {pooler.featmap_names}")
    return MultiLevelRoIAlign(
        output_size=tuple(output_size),
        sampling_ratio=int(pooler.sampling_ratio),
        aligned=False,  # torchvision's MultiScaleRoIAlign never sets aligned
        spatial_scales=tuple(spatial_scales),
    )


class MaskRCNNGraph(nn.Module):
    """Mask R-CNN / Keypoint R-CNN inference as one module for one network-input size.

    Args:
        model: a torchvision ``MaskRCNN`` or ``KeypointRCNN`` (or the demo model: a
            ``MaskRCNN`` whose RoI heads also have a keypoint head), in eval mode, with
            its weights loaded. Its modules are shared, not copied.
        size: (H, W) network-input size, pixels, multiples of 32.
        static: pad the proposals and the detections to fixed counts (TensorRT);
            False leaves the detection axis dynamic (see the module docstring).
        detections_per_img: at most this many detections, the best (default: the
            model's ``roi_heads.detections_per_img``).

    Attributes:
        size: (H, W).
        static: as given.
        detections_per_img: D in static mode, the cap otherwise.
        has_masks: whether ``mask_probs`` is an output.
        has_keypoints: whether ``keypoint_heatmaps`` is an output.
        output_names: names of the outputs, in :meth:`forward`'s order.

    Raises:
        ConfigError: a size that is not a multiple of 32, or a model of another layout.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        size: tuple[int, int],
        static: bool = False,
        detections_per_img: int | None = None,
    ) -> None:
        super().__init__()
        self.size = parse_size(size)
        self.static = bool(static)
        heads, rpn = model.roi_heads, model.rpn
        self.backbone = model.backbone
        self.rpn_head = rpn.head
        self.rpn_box_coder = rpn.box_coder
        self.box_coder = heads.box_coder
        self.pre_nms_top_n = int(rpn._pre_nms_top_n["testing"])
        self.post_nms_top_n = int(rpn._post_nms_top_n["testing"])
        self.rpn_nms_thresh = float(rpn.nms_thresh)
        self.rpn_min_size = float(rpn.min_size)
        self.rpn_score_thresh = float(rpn.score_thresh)
        self.box_nms_thresh = float(heads.nms_thresh)
        self.detections_per_img = int(detections_per_img or heads.detections_per_img)
        if self.detections_per_img < 1:
            raise ConfigError(f"detections_per_img must be >= 1, got {self.detections_per_img}")
        self.box_head = heads.box_head
        self.box_predictor = heads.box_predictor
        self.has_masks = heads.has_mask()
        self.has_keypoints = heads.has_keypoint()
        if self.has_masks:
            self.mask_head, self.mask_predictor = heads.mask_head, heads.mask_predictor
        if self.has_keypoints:
            self.keypoint_head, self.keypoint_predictor = heads.keypoint_head, heads.keypoint_predictor

        # Anchors and FPN scales depend only on the input size: compute them once.
        param = next(model.parameters())
        with torch.no_grad():
            dummy = torch.zeros((1, 3, *self.size), dtype=param.dtype, device=param.device)
            features = list(self.backbone(dummy).values())
            image_list = torchvision.models.detection.image_list.ImageList(dummy, [self.size])
            anchors = rpn.anchor_generator(image_list, features)[0]
        rpn_shapes = [f.shape[-2:] for f in features]
        anchors_per_location = rpn.anchor_generator.num_anchors_per_location()
        self.num_anchors_per_level = [int(a * h * w) for a, (h, w) in zip(anchors_per_location, rpn_shapes, strict=True)]
        self.register_buffer("anchors", anchors, persistent=False)
        # torchvision's MultiScaleRoIAlign: scale = 2 ** round(log2(feature side / image side)).
        scales = [2.0 ** round(math.log2(f.shape[-2] / self.size[0])) for f in features[:4]]
        self.box_roi_align = _roi_align_from(heads.box_roi_pool, scales)
        if self.has_masks:
            self.mask_roi_align = _roi_align_from(heads.mask_roi_pool, scales)
        if self.has_keypoints:
            self.keypoint_roi_align = _roi_align_from(heads.keypoint_roi_pool, scales)
        names = ["boxes", "scores", "labels", "num_detections"]
        names += ["mask_probs"] if self.has_masks else []
        names += ["keypoint_heatmaps"] if self.has_keypoints else []
        self.output_names: tuple[str, ...] = tuple(names)

    # -- stages ---------------------------------------------------------------------------------

    def _proposals(self, features: list[Tensor], image_size: Tensor) -> Tensor:
        """RPN proposals (P, 4) xyxy, P <= post_nms_top_n (``RegionProposalNetwork`` eval branch)."""
        objectness, deltas = self.rpn_head(features)
        # concat_box_prediction_layers: (1, A*C, H, W) -> (H * W * A, C) per level, levels concatenated.
        scores_per_level, deltas_per_level = [], []
        for obj, reg in zip(objectness, deltas, strict=True):
            a = obj.shape[1]
            scores_per_level.append(obj.reshape(1, a, 1, obj.shape[2], obj.shape[3]).permute(0, 3, 4, 1, 2).reshape(-1))
            deltas_per_level.append(
                reg.reshape(1, a, 4, reg.shape[2], reg.shape[3]).permute(0, 3, 4, 1, 2).reshape(-1, 4)
            )
        # The best pre_nms_top_n anchors of each level (RegionProposalNetwork._get_top_n_idx);
        # decoding only those equals decoding all and then selecting (row-wise arithmetic).
        picks, levels = [], []
        offset = 0
        for level, (scores, n) in enumerate(zip(scores_per_level, self.num_anchors_per_level, strict=True)):
            _, idx = scores.topk(min(self.pre_nms_top_n, n))
            picks.append(idx + offset)
            levels.append(torch.full_like(idx, level))
            offset += n
        pick = torch.cat(picks)
        level = torch.cat(levels)
        scores = torch.cat(scores_per_level)[pick]
        deltas = torch.cat(deltas_per_level)[pick]
        boxes = self.rpn_box_coder.decode_single(deltas.detach(), self.anchors[pick])
        prob = torch.sigmoid(scores)
        boxes = _clip(boxes, image_size)
        keep = _non_small(boxes, self.rpn_min_size)
        boxes, prob, level = boxes[keep], prob[keep], level[keep]
        keep = torch.where(prob >= self.rpn_score_thresh)[0]
        boxes, prob, level = boxes[keep], prob[keep], level[keep]
        keep = _batched_nms(boxes, prob, level, self.rpn_nms_thresh)[: self.post_nms_top_n]
        return boxes[keep]

    def _detections(
        self, features: list[Tensor], proposals: Tensor, image_size: Tensor, score_thresh: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Box head and ``RoIHeads.postprocess_detections``: boxes (D, 4), scores (D,), labels (D,)."""
        pooled = self.box_roi_align(proposals, *features[:4])
        class_logits, box_regression = self.box_predictor(self.box_head(pooled))
        num_classes = class_logits.shape[-1]
        boxes = self.box_coder.decode_single(box_regression, proposals).reshape(-1, num_classes, 4)
        scores = F.softmax(class_logits, -1)
        boxes = _clip(boxes.reshape(-1, 4), image_size).reshape(-1, num_classes, 4)
        labels = torch.arange(num_classes, device=scores.device).view(1, -1).expand_as(scores)
        # Drop the background class; one candidate per (proposal, class).
        boxes = boxes[:, 1:].reshape(-1, 4)
        scores = scores[:, 1:].reshape(-1)
        labels = labels[:, 1:].reshape(-1)
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return self._export_nms(boxes, scores, score_thresh, num_classes - 1)
        keep = torch.where(scores > score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = _non_small(boxes, 1e-2)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = _batched_nms(boxes, scores, labels, self.box_nms_thresh)[: self.detections_per_img]
        return boxes[keep], scores[keep], labels[keep]

    def _export_nms(
        self, boxes: Tensor, scores: Tensor, score_thresh: Tensor, num_classes: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The same filters and per-class NMS as the eager branch, as one class-batched ONNX NMS.

        A candidate (proposal, class) that fails ``score > score_thresh`` or the 1e-2 px
        size rule gets score -1, which NMS's score threshold (-0.5) drops; the kept ones
        are sorted by score and the best ``detections_per_img`` returned, as
        ``batched_nms`` + ``[:detections_per_img]`` does.
        """
        boxes = boxes.reshape(-1, num_classes, 4)
        scores = scores.reshape(-1, num_classes)
        ws, hs = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        valid = (scores > score_thresh) & (ws >= 1e-2) & (hs >= 1e-2)
        masked = torch.where(valid, scores, torch.full_like(scores, -1.0))
        selected = _PerClassNMS.apply(boxes.permute(1, 0, 2), masked.t().unsqueeze(1), self.box_nms_thresh)
        cls, prop = selected[:, 0], selected[:, 2]
        kept_scores = masked[prop, cls]
        order = torch.sort(kept_scores, descending=True)[1][: self.detections_per_img]
        cls, prop = cls[order], prop[order]
        return boxes[prop, cls], masked[prop, cls], cls + 1

    def forward(self, images: Tensor, image_size: Tensor, score_thresh: Tensor) -> tuple[Tensor, ...]:
        """Detect instances in one preprocessed image.

        Args:
            images: (1, 3, H, W) float32, the normalised image padded with zeros
                (:func:`preprocess`).
            image_size: (2,) float32, (h, w) of the image inside the padding, pixels.
            score_thresh: (1,) float32, keep detections with class score above it.

        Returns:
            ``boxes`` (D, 4) float32 xyxy network-input pixels, clipped to (h, w);
            ``scores`` (D,) float32 in decreasing order; ``labels`` (D,) int64;
            ``num_detections`` (1,) int64; then ``mask_probs`` (D, M, M) float32 (the
            label's mask, sigmoid) and / or ``keypoint_heatmaps`` (D, K, 56, 56)
            float32 logits, per :attr:`output_names`. Static mode: D =
            ``detections_per_img`` and rows from ``num_detections`` on are zeros.
        """
        features = list(self.backbone(images).values())
        proposals = self._proposals(features, image_size)
        if self.static:
            proposals = _pad_rows(proposals, self.post_nms_top_n)
        boxes, scores, labels = self._detections(features, proposals, image_size, score_thresh)
        num = torch.ones_like(labels).sum().reshape(1)
        if self.static:
            boxes = _pad_rows(boxes, self.detections_per_img)
            scores = _pad_rows(scores, self.detections_per_img)
            labels = _pad_rows(labels, self.detections_per_img)
        outputs = [boxes, scores, labels, num]
        if self.has_masks:
            logits = self.mask_predictor(self.mask_head(self.mask_roi_align(boxes, *features[:4])))
            m = logits.shape[-1]
            index = labels.reshape(-1, 1, 1, 1).expand(-1, 1, m, m)
            # [:, 0], not .squeeze(1): squeeze of a dimension the exporter cannot prove is 1 becomes an
            # ONNX If (rank 3 or rank 4 branches), which TensorRT rejects and NNCF must quantize around.
            outputs.append(torch.sigmoid(logits.gather(1, index)[:, 0]))
        if self.has_keypoints:
            pooled = self.keypoint_roi_align(boxes, *features[:4])
            outputs.append(self.keypoint_predictor(self.keypoint_head(pooled)))
        return tuple(outputs)
