"""Outputs: annotated H.264 video (PyAV) and per-frame JSON Lines results (COCO RLE)."""

from __future__ import annotations

from streamseg.sinks.jsonl import JsonlWriter, read_jsonl, result_to_dict
from streamseg.sinks.video import VideoWriter

__all__ = ["VideoWriter", "JsonlWriter", "result_to_dict", "read_jsonl"]
