"""Outputs: annotated H.264 video (PyAV), per-frame JSON Lines (COCO RLE), a COCO results json, MOT txt,
MP4 segments, events.

:class:`Output` is the protocol a stream's processor writes to; :class:`VideoOutput`,
:class:`JsonlOutput`, :class:`CocoJsonOutput`, :class:`MotOutput` and :class:`SegmentedVideoOutput` are the file
outputs built on the writers (:class:`VideoWriter`, :class:`JsonlWriter`, ``MotWriter``).
"""

from __future__ import annotations

from streamseg.sinks.coco_json import CocoJsonWriter
from streamseg.sinks.events import EventLog
from streamseg.sinks.jsonl import JsonlWriter, read_jsonl, result_to_dict
from streamseg.sinks.outputs import CocoJsonOutput, JsonlOutput, MotOutput, Output, VideoOutput, file_outputs
from streamseg.sinks.segmented import SegmentedVideoOutput
from streamseg.sinks.video import VideoWriter

__all__ = [
    "CocoJsonOutput",
    "CocoJsonWriter",
    "EventLog",
    "JsonlOutput",
    "JsonlWriter",
    "MotOutput",
    "Output",
    "SegmentedVideoOutput",
    "VideoOutput",
    "VideoWriter",
    "read_jsonl",
    "file_outputs",
    "result_to_dict",
]
