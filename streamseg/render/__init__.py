"""Pure drawing functions: each returns a new image and never touches its inputs.

What is drawn per instance: a translucent mask with an outline, the box, a label
("person 0.92 #7": class, score, track ID), and for persons with keypoints the
COCO skeleton. A small HUD (heads-up display) in the top-left corner shows text
lines such as fps and frame latency.

Labels are placed (:func:`place_labels`) so that they stay inside the frame and keep
clear of the HUD and of each other where there is room: above the box's top-left
corner when that place is free, else inside the box at its top, else one of a few
other places at the box; the most confident instances choose first.

Colours: by track ID when the instance is tracked (stable across frames), else
by class, from a fixed palette. All colours are RGB, like the images.
"""

from streamseg.render.draw import TrackTrails, render
from streamseg.render.hud import draw_hud, hud_rect
from streamseg.render.labels import label_rects, place_labels
from streamseg.render.options import PALETTE, RenderOptions, color_for, visible_instances

__all__ = [
    "RenderOptions",
    "TrackTrails",
    "render",
    "visible_instances",
    "draw_hud",
    "hud_rect",
    "label_rects",
    "place_labels",
    "color_for",
    "PALETTE",
]
