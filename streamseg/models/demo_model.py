"""The demo model: a small Mask R-CNN with a keypoint head in the same RoIHeads.

One torchvision ``MaskRCNN`` (He et al. 2017) whose ``RoIHeads`` also carries
torchvision's keypoint branch (``keypoint_roi_pool``, ``keypoint_head``,
``keypoint_predictor``, as ``KeypointRCNN`` sets them), so one forward pass gives
boxes, classes, 28 x 28 masks and 17 COCO keypoints. Everything is a torchvision
module; the losses are torchvision's (``model(images, targets)`` in train mode).

Backbone: a small VGG-style body of 3 x 3 conv-BN-ReLU blocks (torchvision's
``Conv2dNormActivation``, trainable ``BatchNorm2d``: it is trained from scratch),
:data:`BODY_CHANNELS` channels at strides 4, 8, 16, 32, and an FPN (Lin et al.
2017; torchvision's ``BackboneWithFPN``) of :data:`FPN_CHANNELS` channels on those
strides (P2..P5) plus the max-pool P6 for the RPN: the level layout of
``maskrcnn_resnet50_fpn``, so the multi-level RoIAlign assigns levels 2..5 with
canonical scale 224, level 4 (``MultiScaleRoIAlign`` over ``"0"``..``"3"``).
Heads are narrow versions of torchvision's: ``TwoMLPHead`` of :data:`BOX_HEAD_DIM`,
4-conv mask and keypoint heads of :data:`HEAD_CHANNELS` channels. 2.04 M parameters.

Built for small frames (the demo world is 320 x 240): run it with
``min_size=240`` (:data:`DEMO_MIN_SIZE`), the size it was trained at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "DEMO_CATEGORIES",
    "DEMO_MAX_SIZE",
    "DEMO_MIN_SIZE",
    "FPN_CHANNELS",
    "build_demo_model",
    "build_maskrcnn_keypoint_model",
]

#: Class names of the demo world indexed by label (0 is the background).
DEMO_CATEGORIES: tuple[str, ...] = ("__background__", "person", "ball", "box", "car")
#: Shorter image side the demo model was trained at, pixels (the demo frames are 240 x 320).
DEMO_MIN_SIZE = 240
#: Longest side cap used in training, pixels.
DEMO_MAX_SIZE = 400
#: Channels of the body at strides 4, 8, 16, 32.
BODY_CHANNELS: tuple[int, int, int, int] = (32, 64, 128, 192)
#: FPN output channels.
FPN_CHANNELS = 64
#: Channels of the 4 conv layers of the mask and the keypoint heads.
HEAD_CHANNELS = 32
#: Hidden width of the box head's two FC layers (torchvision's TwoMLPHead uses 1024).
BOX_HEAD_DIM = 256
#: Anchor sizes per FPN level (P2..P6), pixels; 3 aspect ratios each (0.5, 1, 2).
ANCHOR_SIZES: tuple[tuple[int, ...], ...] = ((16, 24), (32, 48), (64, 96), (128, 192), (256, 384))


def _conv(cin: int, cout: int, stride: int) -> Any:
    """3 x 3 convolution, ``BatchNorm2d``, ReLU (torchvision's ``Conv2dNormActivation``)."""
    from torch import nn
    from torchvision.ops.misc import Conv2dNormActivation

    return Conv2dNormActivation(cin, cout, kernel_size=3, stride=stride, norm_layer=nn.BatchNorm2d,
                                activation_layer=nn.ReLU)


def _backbone() -> Any:
    """A small VGG-style body (3 x 3 conv-BN-ReLU, strides 4..32) + FPN P2..P5 + P6 max pool.

    Stages (output stride, channels): stem (4, 32), c3 (8, 64), c4 (16, 128), c5 (32, 192),
    two convolutions each (the first with stride 2). Wrapped by torchvision's
    ``BackboneWithFPN`` (``IntermediateLayerGetter`` + ``FeaturePyramidNetwork``).
    """
    from collections import OrderedDict

    from torch import nn
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    c2, c3, c4, c5 = BODY_CHANNELS
    body = nn.Sequential(
        OrderedDict(
            [
                ("stem", nn.Sequential(_conv(3, 24, 2), _conv(24, c2, 2), _conv(c2, c2, 1))),
                ("layer2", nn.Sequential(_conv(c2, c3, 2), _conv(c3, c3, 1))),
                ("layer3", nn.Sequential(_conv(c3, c4, 2), _conv(c4, c4, 1))),
                ("layer4", nn.Sequential(_conv(c4, c5, 2), _conv(c5, c5, 1))),
            ]
        )
    )
    return BackboneWithFPN(
        body,
        return_layers={"stem": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=list(BODY_CHANNELS),
        out_channels=FPN_CHANNELS,
        extra_blocks=LastLevelMaxPool(),
    )


def build_maskrcnn_keypoint_model(
    num_classes: int,
    *,
    num_keypoints: int = 17,
    **kwargs: Any,
) -> Any:
    """A small Mask R-CNN with a keypoint branch in its RoIHeads, random weights.

    Args:
        num_classes: number of labels including the background (label 0).
        num_keypoints: keypoints per instance (17 for COCO persons).
        **kwargs: passed to ``torchvision.models.detection.MaskRCNN`` (``min_size``,
            ``max_size``, ``box_score_thresh``, ``box_detections_per_img``, ...).

    Returns:
        ``torchvision.models.detection.MaskRCNN`` in training mode whose ``roi_heads``
        also has ``keypoint_roi_pool`` (``MultiScaleRoIAlign`` 14 x 14, sampling 2),
        ``keypoint_head`` (``KeypointRCNNHeads``) and ``keypoint_predictor``
        (``KeypointRCNNPredictor``, 56 x 56 heatmaps), as torchvision's ``KeypointRCNN``.
    """
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    levels = ["0", "1", "2", "3"]
    anchors = AnchorGenerator(ANCHOR_SIZES, ((0.5, 1.0, 2.0),) * len(ANCHOR_SIZES))
    defaults: dict[str, Any] = {
        "min_size": DEMO_MIN_SIZE,
        "max_size": DEMO_MAX_SIZE,
        "rpn_pre_nms_top_n_train": 1000,
        "rpn_post_nms_top_n_train": 500,
        "rpn_pre_nms_top_n_test": 500,
        "rpn_post_nms_top_n_test": 300,
        "rpn_batch_size_per_image": 128,
        "box_batch_size_per_image": 128,
    }
    defaults.update(kwargs)
    model = MaskRCNN(
        _backbone(),
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(FPN_CHANNELS * 7 * 7, BOX_HEAD_DIM),
        box_predictor=FastRCNNPredictor(BOX_HEAD_DIM, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(FPN_CHANNELS, (HEAD_CHANNELS,) * 4, 1),
        mask_predictor=MaskRCNNPredictor(HEAD_CHANNELS, HEAD_CHANNELS, num_classes),
        **defaults,
    )
    heads = model.roi_heads
    heads.keypoint_roi_pool = MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2)
    heads.keypoint_head = KeypointRCNNHeads(FPN_CHANNELS, (HEAD_CHANNELS,) * 4)
    heads.keypoint_predictor = KeypointRCNNPredictor(HEAD_CHANNELS, num_keypoints)
    return model


def build_demo_model(categories: Sequence[str] = DEMO_CATEGORIES, **kwargs: Any) -> Any:
    """The registry builder of model ``demo``: :func:`build_maskrcnn_keypoint_model` for the demo classes.

    Args:
        categories: class names indexed by label (background first).
        **kwargs: as :func:`build_maskrcnn_keypoint_model`.

    Returns:
        ``torchvision.models.detection.MaskRCNN`` with a keypoint branch, random weights.
    """
    kwargs.pop("num_classes", None)
    return build_maskrcnn_keypoint_model(len(categories), **kwargs)
