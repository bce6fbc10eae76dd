"""COCO constants: category names, person keypoint names and the skeleton.

Sources: the COCO 2017 annotation files (``categories`` of instances_val2017.json
and person_keypoints_val2017.json) and torchvision's ``_COCO_CATEGORIES`` /
``_COCO_PERSON_KEYPOINT_NAMES`` (torchvision/models/detection/_meta.py), whose
index is the COCO category id: index 0 is the background and the 11 ids COCO
never used are "N/A".
"""

from __future__ import annotations

__all__ = [
    "COCO_CATEGORIES",
    "COCO_PERSON_CATEGORIES",
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "KEYPOINT_FLIP",
]

#: 91 names indexed by COCO category id (torchvision's label space); 0 is background.
COCO_CATEGORIES: tuple[str, ...] = (
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train",
    "truck", "boat", "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter",
    "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
    "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A", "handbag", "tie", "suitcase",
    "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A",
    "dining table", "N/A", "N/A", "toilet", "N/A", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "N/A",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

#: Label space of torchvision's Keypoint R-CNN: background and person (COCO id 1).
COCO_PERSON_CATEGORIES: tuple[str, ...] = ("__background__", "person")

#: The 17 COCO person keypoints, in annotation order.
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

#: The COCO person skeleton as 0-based keypoint index pairs (the json's 1-based
#: ``skeleton`` minus one): 19 limbs.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

#: Index of each keypoint's mirror image (left <-> right), for horizontal flips.
KEYPOINT_FLIP: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

assert len(COCO_CATEGORIES) == 91
assert len(COCO_KEYPOINT_NAMES) == 17
