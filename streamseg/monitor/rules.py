"""Event rules of the monitor, evaluated on each written frame of a stream (an :class:`~streamseg.sinks.Output`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from streamseg.monitor.config import RuleConfig
from streamseg.sinks.events import EventLog
from streamseg.types import FrameResult

__all__ = ["RuleState", "RulesOutput"]


class RuleState:
    """Evaluation state of one rule on one stream.

    ``count``: fires once when at least ``min_count`` instances of the class have been
    in view for ``duration_s`` seconds of stream time (re-armed when the count drops).
    ``new_track``: fires for every track ID of the class seen for the first time.

    Args:
        rule: the rule.
        label: the class's label index in the model's categories.
    """

    def __init__(self, rule: RuleConfig, label: int) -> None:
        self.rule, self.label = rule, label
        self.since_pts: float | None = None
        self.fired = False
        self.seen: set[int] = set()

    def update(self, result: FrameResult) -> list[dict[str, Any]]:
        """The events this frame fires (``type``, ``rule``, ``kind``, ``class``, ``frame``, ``pts_s``, ...)."""
        inst, frame, rule = result.instances, result.frame, self.rule
        mask = inst.labels == self.label
        base = {"type": "rule", "rule": rule.name, "kind": rule.kind, "class": rule.class_name,
                "frame": frame.index, "pts_s": round(frame.pts_s, 3)}
        if rule.kind == "new_track":
            out = []
            for tid in inst.track_ids[mask]:
                if tid >= 0 and int(tid) not in self.seen:
                    self.seen.add(int(tid))
                    out.append({**base, "track_id": int(tid)})
            return out
        count = int(np.count_nonzero(mask))
        if count < rule.min_count:
            self.since_pts, self.fired = None, False
            return []
        if self.since_pts is None:
            self.since_pts = frame.pts_s
        if not self.fired and frame.pts_s - self.since_pts >= rule.duration_s:
            self.fired = True
            return [{**base, "count": count, "since_pts_s": round(self.since_pts, 3)}]
        return []


class RulesOutput:
    """Evaluates a stream's rules on every written frame and appends their events to the event log.

    Args:
        stream: the stream name (the events' ``stream`` key).
        rules: the rules that apply to this stream.
        categories: the model's class names (a rule's class becomes its label here).
        events: the shared event log.

    Raises:
        KeyError: a rule names a class the model does not have (checked by the monitor first).
    """

    needs_image = False
    stage = "rules"

    def __init__(self, stream: str, rules: Sequence[RuleConfig], *, categories: Sequence[str], events: EventLog) -> None:
        labels = {name: i for i, name in enumerate(categories)}
        self.stream = stream
        self.states = [RuleState(r, labels[r.class_name]) for r in rules]
        self.events = events

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        for state in self.states:
            for event in state.update(result):
                self.events.write({"stream": self.stream, **event})

    def close(self) -> None:
        """Nothing to flush: the event log belongs to the monitor."""
