"""COCO-format training data as torchvision detection targets (:class:`CocoTrainingSet`).

Category ids are used as labels directly (``num_classes = max id + 1``), so a model
trained on the set predicts the dataset's ids.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ConfigError, SourceError

__all__ = ["CocoTrainingSet", "collate"]

_EXAMPLES = 3
_NUM_KEYPOINTS = 17


class CocoTrainingSet:
    """A COCO-format detection dataset as torchvision detection targets.

    Item ``i`` is ``(image, target)``: ``image`` a (3, H, W) float32 tensor in [0, 1]
    (RGB), ``target`` a dict of ``boxes`` (N, 4) float32 xyxy pixels, ``labels`` (N,)
    int64 category ids, ``masks`` (N, H, W) uint8, ``keypoints`` (N, 17, 3) float32
    (x, y, visibility; all zero for annotations without keypoints), ``image_id``.

    Crowd annotations (``iscrowd`` 1) and boxes under 1 pixel are skipped; images
    left without annotations are dropped (as torchvision's detection references do).

    Args:
        coco_json: the annotation file.
        images_dir: the folder that ``file_name`` is relative to.

    Attributes:
        categories: names indexed by category id (``"N/A"`` for unused ids; 0 is
            ``"__background__"``).
        num_classes: ``max category id + 1``.
        has_keypoints: whether any category declares keypoints.

    Raises:
        ConfigError: unreadable or malformed json; no categories; no usable image.
        SourceError: image files listed in the json are missing or unreadable.
    """

    def __init__(self, coco_json: str | os.PathLike[str], images_dir: str | os.PathLike[str]) -> None:
        path = Path(coco_json)
        root = Path(images_dir)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such COCO annotation file") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable COCO json ({exc})") from exc
        if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
            raise ConfigError(f"{path}: not a COCO instances json (needs images, annotations and categories)")
        if not root.is_dir():
            raise SourceError(f"{root}: image folder not found (for {path})")
        cats = data["categories"]
        if not cats:
            raise ConfigError(f"{path}: no categories")
        try:
            self.num_classes = max(int(c["id"]) for c in cats) + 1
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: malformed categories ({exc})") from exc
        names = ["N/A"] * self.num_classes
        names[0] = "__background__"
        for c in cats:
            names[int(c["id"])] = str(c.get("name", c["id"]))
        self.categories: tuple[str, ...] = tuple(names)
        self.has_keypoints = any(c.get("keypoints") for c in cats)
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in data["annotations"]:
            if ann.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            if w < 1 or h < 1:
                continue
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
        images = [img for img in data["images"] if int(img["id"]) in by_image]
        if not images:
            raise ConfigError(
                f"{path}: empty dataset ({len(data['images'])} images, {len(data['annotations'])} "
                f"annotations, none usable: non-crowd with a box of at least 1 x 1 pixel)"
            )
        missing = [img["file_name"] for img in images if not (root / img["file_name"]).is_file()]
        if missing:
            shown = ", ".join(missing[:_EXAMPLES]) + (", ..." if len(missing) > _EXAMPLES else "")
            raise SourceError(
                f"{len(missing)} of {len(images)} images listed in {path} are missing under {root} ({shown})"
            )
        self.root = root
        self.path = path
        self.images = images
        self.annotations = by_image

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        import cv2
        import torch
        from pycocotools import mask as mask_util

        info = self.images[index]
        file = self.root / info["file_name"]
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"{file}: cannot read image (listed in {self.path})")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        anns = self.annotations[int(info["id"])]
        boxes = np.zeros((len(anns), 4), np.float32)
        labels = np.zeros(len(anns), np.int64)
        masks = np.zeros((len(anns), h, w), np.uint8)
        keypoints = np.zeros((len(anns), _NUM_KEYPOINTS, 3), np.float32)
        for i, ann in enumerate(anns):
            x, y, bw, bh = (float(v) for v in ann["bbox"])
            boxes[i] = (x, y, x + bw, y + bh)
            labels[i] = int(ann["category_id"])
            seg = ann.get("segmentation")
            if isinstance(seg, list):  # polygons
                rle = mask_util.merge(mask_util.frPyObjects(seg, h, w)) if seg else None
            elif isinstance(seg, dict):
                rle = mask_util.frPyObjects(seg, h, w) if isinstance(seg.get("counts"), list) else seg
            else:
                rle = None
            if rle is not None:
                masks[i] = mask_util.decode(rle)
            else:  # no segmentation: the box
                masks[i, int(y) : int(math.ceil(y + bh)), int(x) : int(math.ceil(x + bw))] = 1
            kps = ann.get("keypoints")
            if kps and len(kps) == 3 * _NUM_KEYPOINTS:
                keypoints[i] = np.asarray(kps, np.float32).reshape(_NUM_KEYPOINTS, 3)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)
        target = {
            "boxes": torch.from_numpy(boxes),
            "labels": torch.from_numpy(labels),
            "masks": torch.from_numpy(masks),
            "keypoints": torch.from_numpy(keypoints),
            "image_id": int(info["id"]),
        }
        return image, target


def collate(batch: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Lists of images and targets (torchvision detection models take lists)."""
    return [b[0] for b in batch], [b[1] for b in batch]

