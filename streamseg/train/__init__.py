"""``streamseg train``: train a Mask R-CNN with a keypoint head on a COCO-format dataset.

Modules: :mod:`~streamseg.train.data` (the COCO-format dataset as torchvision targets),
:mod:`~streamseg.train.loop` (model, optimiser schedule, the loop and its checkpoints) and
:mod:`~streamseg.train.command` (the subcommand's arguments; ``add_parser`` and ``run``).

The model is one torchvision ``MaskRCNN`` whose ``RoIHeads`` also has the keypoint
branch (:func:`streamseg.models.demo_model.build_maskrcnn_keypoint_model`), trained
with torchvision's own losses (``model(images, targets)`` in train mode: RPN
objectness and box regression, Fast R-CNN classification and box regression, mask
BCE and keypoint cross-entropy; He et al. 2017). Non-person targets carry
keypoints with visibility 0, which torchvision's ``keypointrcnn_loss`` ignores.

Data: any COCO json (``--coco``) with its image folder (``--images``), or the demo
world (``--synthetic N_CLIPS``: :func:`streamseg.datasets.demo_export.write_dataset` writes
the images and json under ``OUT/data`` first). Category ids are used as labels
directly (``num_classes = max id + 1``), so predictions carry the dataset's ids.

Optimiser: AdamW (Loshchilov and Hutter 2019) with linear warm-up and a cosine
decay over training progress, where progress is the larger of ``iteration /
--iters`` and ``elapsed / --time-limit`` (so a time-limited run still anneals).

Checkpoints (``torch.save`` of a dict readable with ``torch.load(weights_only=True)``):
``OUT/last.pt`` every ``--checkpoint-every`` iterations and at the end (model,
optimiser, iteration, elapsed seconds, categories: for ``--resume``), and the
final model ``OUT/final.pt`` (or ``--final PATH``): ``{"model": state_dict,
"categories": [...], "meta": {...}}``, which the registry loads by path
(``--model demo --weights PATH``; :func:`streamseg.models.weights.read_state_dict`
takes the ``"model"`` entry).

The demo model is trained by one command (see streamseg/models/weights/DEMO_MODEL.md)::

    streamseg train --synthetic 500 --frames-per-clip 48 --frame-stride 4 --out runs/demo \\
        --iters 5000 --time-limit 54 --batch-size 4 --lr 1.5e-3 --warmup 200 --seed 0 \\
        --threads 1 --checkpoint-every 200 --final streamseg/models/weights/demo.pt
"""

from __future__ import annotations

from streamseg.train.command import add_parser, run
from streamseg.train.data import CocoTrainingSet, collate
from streamseg.train.loop import TrainConfig, build_model, train

__all__ = [
    "CocoTrainingSet",
    "TrainConfig",
    "add_parser",
    "build_model",
    "collate",
    "run",
    "train",
]
