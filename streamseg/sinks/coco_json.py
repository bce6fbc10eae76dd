"""A COCO results file (``streamseg run --coco-json``): one JSON list of result dicts, written as frames come.

The file is the COCO results format (https://cocodataset.org/#format-results) that
``pycocotools.coco.COCO.loadRes`` and ``streamseg eval`` read: a list of
:meth:`Instances.to_coco <streamseg.types.Instances.to_coco>` dicts, one per instance,
the same fields with the same code as the JSONL (:mod:`streamseg.coco_results`).

The list is written one frame at a time, each frame's entries flushed to the OS, and
closed with ``]`` by :meth:`CocoJsonWriter.close`; a run that stops on an error or a
signal closes it, so the file is always valid JSON (only a killed process, SIGKILL,
leaves it without its ``]``).

The image id of a frame is :func:`~streamseg.coco_results.coco_image_id`: the number
in its file name for an image folder of COCO-named files (``000000000139.jpg`` is image
139, as COCO names them), else frame index + 1.
"""

from __future__ import annotations

import json
from pathlib import Path

from streamseg.coco_results import coco_image_id
from streamseg.sinks.textfile import FlushedTextFile
from streamseg.types import FrameResult

__all__ = ["CocoJsonWriter"]


class CocoJsonWriter(FlushedTextFile):
    """Write a COCO results json list, frame by frame (see the module docstring).

    Args:
        path: output file (created or truncated; its folder must exist).

    Attributes:
        results_written: result dicts (instances) written so far.

    Raises:
        SinkError: the file cannot be created or written.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, what="COCO results")
        self.results_written = 0
        self._write_flushed("[")

    def write(self, result: FrameResult) -> None:
        """Append the COCO results of one frame's instances and flush them.

        Raises:
            SinkError: the writer is closed, or writing failed (e.g. disk full).
        """
        self._check_open()
        entries = result.instances.to_coco(coco_image_id(result.frame))
        text = "".join(
            ("\n" if self.results_written + k == 0 else ",\n") + json.dumps(e, separators=(",", ":"), allow_nan=False)
            for k, e in enumerate(entries)
        )
        self._write_flushed(text)
        self.results_written += len(entries)

    def close(self) -> None:
        """End the list (``]``) and close the file; idempotent.

        Raises:
            SinkError: the final write failed.
        """
        if not self.closed:
            self._write_flushed("\n]\n")
        super().close()
