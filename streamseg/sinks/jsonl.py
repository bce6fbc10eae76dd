"""Per-frame results as JSON Lines: one JSON object per frame, flushed per line.

Schema of one line (coordinates in image pixels, times in seconds or ms)::

    {"frame": 12,                       # Frame.index
     "pts": 1.2,                        # Frame.pts_s, seconds, 6 decimals
     "source": "video.mp4",             # Frame.source_id
     "file_name": "000000000139.jpg",   # Frame.file_name: the image's file (image folders), else null
     "image_size": [576, 768],          # [H, W]
     "instances": [
       {"track_id": 3,                  # -1 if untracked
        "category_id": 1,               # the model's label (COCO category id for COCO models)
        "score": 0.9871,                # 4 decimals
        "bbox": [x, y, w, h],           # COCO xywh, float pixels, 3 decimals (0.001 px)
        "segmentation": {"size": [H, W], "counts": "..."},  # COCO RLE, if the instance has a mask
        "keypoints": [x1, y1, 2, ...],  # COCO 17 x (x, y, v), v = 2, 3 decimals; if it has keypoints
        "label": "person",              # categories[category_id]
        "keypoint_scores": [...]},      # 17 floats (heatmap logits), 4 decimals
     ],
     "timings_ms": {"decode": 2.113, "model": 151.2}}  # ms of the stages before the outputs

``timings_ms`` holds the frame's stages up to its hand-over to the outputs (decode,
preprocess, model, postprocess, track, render, and the outputs written in the stream's
own thread before this one); the MP4 encoder and this writer run in threads of their
own (:mod:`streamseg.core.output_worker`), so their times are in the run's summary, not
here.

The COCO fields (``category_id``, ``score``, ``bbox``, ``segmentation``, ``keypoints``)
are :func:`streamseg.coco_results.coco_fields`, the same code as
:meth:`Instances.to_coco <streamseg.types.Instances.to_coco>` and the ``--coco-json``
file. The RLE is ``pycocotools.mask.encode`` of the full-size binary mask
(probability > 0.5, pasted as torchvision's ``paste_masks_in_image``), so
``pycocotools.mask.decode`` gives back exactly
:func:`streamseg.masks.paste_masks` for that instance. A person found only by the
keypoint model (``--keypoints``) has no ``segmentation``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streamseg.coco_results import MASK_THRESHOLD, coco_fields
from streamseg.sinks.textfile import FlushedTextFile
from streamseg.types import FrameResult, Instances

__all__ = ["JsonlWriter", "result_to_dict", "read_jsonl", "MASK_THRESHOLD"]

def _instance_dicts(inst: Instances, categories: Sequence[str]) -> list[dict[str, Any]]:
    """The JSON objects of the instances: their COCO fields (:func:`~streamseg.coco_results.coco_fields`),
    with the track id, the label's name and the keypoint scores."""
    rows = []
    for i, fields in enumerate(coco_fields(inst)):
        label = int(inst.labels[i])
        row = {
            "track_id": int(inst.track_ids[i]),
            **fields,
            "label": categories[label] if 0 <= label < len(categories) else str(label),
        }
        if "keypoints" in fields:
            assert inst.keypoints is not None
            row["keypoint_scores"] = [round(float(s), 4) for s in inst.keypoints[i, :, 2]]
        rows.append(row)
    return rows


def result_to_dict(result: FrameResult, categories: Sequence[str]) -> dict[str, Any]:
    """Convert one frame's result to the JSON-ready dict of the module's schema.

    Args:
        result: the frame, its instances (N) and stage timings.
        categories: class names indexed by label (e.g. ``COCO_CATEGORIES``); a
            label outside the list is written as its number.

    Returns:
        A dict of plain Python types (int, float, str, list, dict), ready for
        ``json.dumps``. Keypoints are left out for instances whose keypoint row
        holds NaN; ``segmentation`` is left out when the model has no masks.
    """
    frame, inst = result.frame, result.instances
    return {
        "frame": int(frame.index),
        "pts": round(float(frame.pts_s), 6),
        "source": frame.source_id,
        "file_name": frame.file_name,
        "image_size": [int(inst.image_size[0]), int(inst.image_size[1])],
        "instances": _instance_dicts(inst, categories),
        "timings_ms": {str(k): round(float(v), 3) for k, v in result.timings_ms.items()},
    }


class JsonlWriter(FlushedTextFile):
    """Write one JSON line per frame, flushed after every line.

    An interrupted run leaves a file of complete, valid lines. Use it as a
    context manager, or call :meth:`close`.

    Args:
        path: output file (created or truncated; its folder must exist).
        categories: class names indexed by label, for the ``label`` field.
        append: write after the lines the file holds (see :class:`FlushedTextFile`).

    Attributes:
        frames_written: lines written so far.

    Raises:
        SinkError: the file cannot be created.
    """

    def __init__(self, path: str | Path, *, categories: Sequence[str], append: bool = False) -> None:
        super().__init__(path, what="results", append=append)
        self.categories = tuple(categories)
        self.frames_written = 0

    def write(self, result: FrameResult) -> None:
        """Append the line of one frame and flush it to the OS.

        Raises:
            SinkError: the writer is closed, or writing failed (e.g. disk full).
        """
        self._check_open()
        line = json.dumps(result_to_dict(result, self.categories), separators=(",", ":"), allow_nan=False)
        self._write_flushed(line + "\n")
        self.frames_written += 1


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the per-frame dicts of a JSONL results file, in order.

    Blank lines are skipped. A last line without its newline that does not
    parse (a run killed mid-write) is skipped too.

    Args:
        path: a file written by :class:`JsonlWriter`.

    Yields:
        One dict per frame, in the module's schema.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a line is not valid JSON (the message gives ``path:line``).
    """
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                if not line.endswith("\n"):
                    return  # an interrupted last write
                raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from e
