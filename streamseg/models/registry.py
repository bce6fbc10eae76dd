"""The model registry: model names -> torchvision architecture, official weights file and labels.

Every entry names the official torchvision COCO checkpoint (URL, file name and the
first 8 hex digits of its sha256, which torchvision writes into the file name and
checks on download). The full sha256 is ``None`` until a file has been seen: we have
never downloaded these files here, so we do not guess. Once a file has been
verified against its prefix, run ``streamseg.models.weights.file_sha256(path)`` and
store the result in the entry's ``sha256``; from then on the whole hash is checked.

The builders build the architecture *exactly as torchvision builds it when it loads
these COCO weights* (``maskrcnn_resnet50_fpn(weights=COCO_V1)`` and friends), but
without loading anything: for the two v1 models that means a ResNet-50 with
``FrozenBatchNorm2d`` and ``eps = 0`` (torchvision's ``overwrite_eps(model, 0.0)``),
which ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` would not give
(it uses trainable ``BatchNorm2d`` with ``eps = 1e-5``).

Adding a model is one more :class:`ModelSpec` in ``_SPECS``.

Importing this module does not import torch; the builders import it when called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from streamseg.errors import ConfigError
from streamseg.models.coco import COCO_CATEGORIES, COCO_PERSON_CATEGORIES
from streamseg.models.demo_model import DEMO_CATEGORIES

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelSpec", "get_model_spec", "model_names"]

_BASE_URL = "https://download.pytorch.org/models/"
#: sha256 of the bundled demo checkpoint (streamseg/models/weights/demo.pt).
_DEMO_SHA256 = "20b6bf0aab1f9fdf7359c7104d7d3b3a280ff3f653cb18bc1144a89d88323bc8"
#: Trainable ResNet stages torchvision uses when it builds a model for pretrained weights
#: (``_validate_trainable_layers(is_trained=True, None, 5, 3)``). Affects training only.
_PRETRAINED_TRAINABLE_LAYERS = 3


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Attributes:
        name: registry name (``--model``), e.g. ``"maskrcnn_resnet50_fpn"``.
        builder: ``builder(**kwargs) -> torch.nn.Module`` building the torchvision
            architecture with no weights loaded (random init); ``kwargs`` go to the
            torchvision model class (``min_size``, ``max_size``, ``box_score_thresh``,
            ``box_detections_per_img``, ...).
        url: official download URL of the COCO checkpoint.
        filename: file name of the checkpoint (``<name>_coco-<sha256_prefix>.pth``).
        sha256_prefix: first 8 hex digits of the file's sha256 (from the file name).
        sha256: the full sha256 (64 hex digits) once a file has been seen, else None.
        categories: class names indexed by label (index 0 is the background).
        has_masks: whether the model predicts (N, 28, 28) masks.
        has_keypoints: whether the model predicts (N, 17) person keypoints.
        description: one line for ``streamseg models``.
        package_file: for a checkpoint shipped inside the package (the demo model), its
            path relative to the ``streamseg`` package folder; None for downloadable ones.
        min_size: default shorter side of the network input, pixels (torchvision's 800 for
            the COCO models; the size the demo model was trained at for ``demo``).
        score_thresh: default score from which instances are drawn and written
            (``--score-thresh``); the model itself runs lower (``ModelConfig.score_floor``).
    """

    name: str
    builder: Callable[..., Any]
    url: str
    filename: str
    sha256_prefix: str
    sha256: str | None
    categories: Sequence[str]
    has_masks: bool
    has_keypoints: bool
    description: str
    package_file: str | None = None
    min_size: int = 800
    score_thresh: float = 0.5

    def build(self, **kwargs: Any) -> Any:
        """Build the architecture with random weights; ``kwargs`` go to :attr:`builder`."""
        return self.builder(**kwargs)


def _resnet50_fpn_frozen_bn(trainable_layers: int) -> Any:
    """ResNet-50-FPN backbone as torchvision builds it for its v1 COCO checkpoints.

    ``resnet50(norm_layer=FrozenBatchNorm2d)`` + ``_resnet_fpn_extractor``, and no weights
    (torchvision/models/detection/mask_rcnn.py, ``maskrcnn_resnet50_fpn``, ``is_trained`` branch).
    """
    from torchvision.models import resnet50
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import misc as misc_nn_ops

    backbone = resnet50(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    return _resnet_fpn_extractor(backbone, trainable_layers)


def build_maskrcnn_resnet50_fpn(**kwargs: Any) -> Any:
    """Mask R-CNN R50-FPN v1, as ``maskrcnn_resnet50_fpn(weights=COCO_V1)`` builds it, unloaded.

    91 classes, FrozenBatchNorm2d with ``eps = 0`` (torchvision's ``overwrite_eps(model, 0.0)``
    for ``MaskRCNN_ResNet50_FPN_Weights.COCO_V1``).

    Args:
        **kwargs: passed to ``torchvision.models.detection.MaskRCNN``.

    Returns:
        ``torchvision.models.detection.MaskRCNN`` in training mode, random weights.
    """
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection._utils import overwrite_eps

    kwargs.setdefault("num_classes", len(COCO_CATEGORIES))
    model = MaskRCNN(_resnet50_fpn_frozen_bn(_PRETRAINED_TRAINABLE_LAYERS), **kwargs)
    overwrite_eps(model, 0.0)
    return model


def build_maskrcnn_resnet50_fpn_v2(**kwargs: Any) -> Any:
    """Mask R-CNN R50-FPN v2 (Li et al. 2021), ``maskrcnn_resnet50_fpn_v2(weights=None)``.

    torchvision builds v2 with ``BatchNorm2d`` everywhere whether or not it loads weights,
    so its own builder with ``weights=None, weights_backbone=None`` is the architecture.

    Args:
        **kwargs: passed to ``torchvision.models.detection.MaskRCNN``.

    Returns:
        ``torchvision.models.detection.MaskRCNN``, random weights.
    """
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    kwargs.setdefault("num_classes", len(COCO_CATEGORIES))
    return maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, **kwargs)


def build_keypointrcnn_resnet50_fpn(**kwargs: Any) -> Any:
    """Keypoint R-CNN R50-FPN, as ``keypointrcnn_resnet50_fpn(weights=COCO_V1)`` builds it, unloaded.

    2 classes (background, person), 17 keypoints, FrozenBatchNorm2d with ``eps = 0``
    (``overwrite_eps(model, 0.0)`` for ``KeypointRCNN_ResNet50_FPN_Weights.COCO_V1``).

    Args:
        **kwargs: passed to ``torchvision.models.detection.KeypointRCNN``.

    Returns:
        ``torchvision.models.detection.KeypointRCNN``, random weights.
    """
    from torchvision.models.detection import KeypointRCNN
    from torchvision.models.detection._utils import overwrite_eps

    kwargs.setdefault("num_classes", len(COCO_PERSON_CATEGORIES))
    kwargs.setdefault("num_keypoints", 17)
    model = KeypointRCNN(_resnet50_fpn_frozen_bn(_PRETRAINED_TRAINABLE_LAYERS), **kwargs)
    overwrite_eps(model, 0.0)
    return model


def build_demo(**kwargs: Any) -> Any:
    """The bundled demo model: a small Mask R-CNN with a keypoint head (``streamseg.models.demo_model``).

    Args:
        **kwargs: passed to ``torchvision.models.detection.MaskRCNN``.

    Returns:
        ``torchvision.models.detection.MaskRCNN`` with a keypoint branch, random weights.
    """
    from streamseg.models.demo_model import build_demo_model

    return build_demo_model(**kwargs)


def _official(
    name: str,
    builder: Callable[..., Any],
    sha256_prefix: str,
    *,
    categories: Sequence[str],
    has_masks: bool,
    has_keypoints: bool,
    description: str,
    sha256: str | None = None,
) -> ModelSpec:
    """A spec for an official torchvision COCO checkpoint ``<name>_coco-<prefix>.pth``."""
    filename = f"{name}_coco-{sha256_prefix}.pth"
    return ModelSpec(
        name=name,
        builder=builder,
        url=_BASE_URL + filename,
        filename=filename,
        sha256_prefix=sha256_prefix,
        sha256=sha256,
        categories=tuple(categories),
        has_masks=has_masks,
        has_keypoints=has_keypoints,
        description=description,
    )


_SPECS: tuple[ModelSpec, ...] = (
    _official(
        "maskrcnn_resnet50_fpn",
        build_maskrcnn_resnet50_fpn,
        "bf2d0c1e",
        categories=COCO_CATEGORIES,
        has_masks=True,
        has_keypoints=False,
        description="Mask R-CNN R50-FPN (He et al. 2017), COCO box AP 37.9 / mask AP 34.6, 170 MB",
    ),
    _official(
        "maskrcnn_resnet50_fpn_v2",
        build_maskrcnn_resnet50_fpn_v2,
        "73cbd019",
        categories=COCO_CATEGORIES,
        has_masks=True,
        has_keypoints=False,
        description="Mask R-CNN R50-FPN v2 (Li et al. 2021), COCO box AP 47.4 / mask AP 41.8, 177 MB",
    ),
    _official(
        "keypointrcnn_resnet50_fpn",
        build_keypointrcnn_resnet50_fpn,
        "fc266e95",
        categories=COCO_PERSON_CATEGORIES,
        has_masks=False,
        has_keypoints=True,
        description="Keypoint R-CNN R50-FPN, persons + 17 keypoints, COCO box AP 54.6 / kp AP 65.0, 226 MB",
    ),
    # The demo model: trained here on the synthetic demo world and shipped in the package
    # (streamseg/models/weights/demo.pt, see DEMO_MODEL.md there); no URL. Run it at
    # min_size 240 (the demo world's 320 x 240 frames), the size it was trained at.
    ModelSpec(
        name="demo",
        builder=build_demo,
        url="",
        filename="demo.pt",
        sha256_prefix=_DEMO_SHA256[:8],
        sha256=_DEMO_SHA256,
        categories=DEMO_CATEGORIES,
        has_masks=True,
        has_keypoints=True,
        description="demo world model (bundled): person/ball/box/car, masks + 17 keypoints, 320x240, min_size 240",
        package_file="models/weights/demo.pt",
        min_size=240,
    ),
)

#: Registry name -> spec, read-only, in registry order.
MODELS: Mapping[str, ModelSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
#: The model used when none is named.
DEFAULT_MODEL = "maskrcnn_resnet50_fpn"


def model_names() -> tuple[str, ...]:
    """Registry names, in registry order."""
    return tuple(MODELS)


def get_model_spec(name: str) -> ModelSpec:
    """Look a model up by registry name.

    Args:
        name: registry name, e.g. ``"maskrcnn_resnet50_fpn"``.

    Returns:
        The :class:`ModelSpec`.

    Raises:
        ConfigError: unknown name; the message lists the known names.
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None
