"""Acceptance: TorchBackend equals torchvision's own ``model([img])`` for the bundled demo model.

The demo model has mask and keypoint heads in one RoIHeads. On generated demo-world
frames its detections are confident and its masks are real objects, unlike the
random-weight parity tests of test_parity.py, whose helpers this file reuses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamseg.backends.torch_backend import TorchBackend, max_size_for
from streamseg.datasets.demo_world import clip_frames
from streamseg.masks import paste_masks
from streamseg.models.demo_model import DEMO_MIN_SIZE
from streamseg.models.registry import get_model_spec

from .test_parity import assert_same_detections, mask_iou, run_reference

WEIGHTS = Path(__file__).resolve().parents[1] / "streamseg" / "models" / "weights" / "demo.pt"
SCORE_THRESH = 0.2

pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"bundled demo weights not found at {WEIGHTS}")


@pytest.fixture(scope="module")
def pair() -> tuple[TorchBackend, torch.nn.Module]:
    backend = TorchBackend("demo", score_thresh=SCORE_THRESH, min_size=DEMO_MIN_SIZE)  # the bundled weights
    reference = get_model_spec("demo").build(
        box_score_thresh=SCORE_THRESH, min_size=DEMO_MIN_SIZE, max_size=max_size_for(DEMO_MIN_SIZE)
    )
    reference.load_state_dict(backend.model.state_dict())
    return backend, reference.eval()


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [f.image for f in clip_frames(seed=123, num_frames=30, only=frozenset({0, 15, 29}))]


def test_demo_parity(pair: tuple[TorchBackend, torch.nn.Module], frames: list[np.ndarray]) -> None:
    backend, reference = pair
    assert not backend.random_weights
    for image in frames:
        ours, _ = backend.infer(image)
        theirs = run_reference(reference, image)
        assert_same_detections(ours, theirs)
        assert ours.scores.max() > 0.9  # confident detections
        # Masks: the same full-size binary masks (pixels within rounding of 0.5 excepted).
        pasted = paste_masks(ours.masks, ours.boxes, ours.image_size, threshold=0.5)
        probs = theirs["masks"][:, 0]
        decided = np.abs(probs - 0.5) > 1e-4
        assert not ((pasted != (probs > 0.5)) & decided).any()
        # IoU >= 0.99 is asked of masks of 200 px or more: on a mask of a few dozen pixels one
        # pixel at probability exactly 0.5 going the other way is enough to fall below it.
        big = (probs > 0.5).sum(axis=(1, 2)) >= 200
        assert big.any()  # real masks, not specks
        assert mask_iou(pasted, probs > 0.5)[big].min() >= 0.99
        # Keypoints: the model predicts them for every class; the backend keeps the persons'
        # (equal to torchvision's) and gives other classes NaN rows.
        assert ours.keypoints.shape == (len(ours), 17, 3)
        person = ours.labels == 1
        assert person.any()
        np.testing.assert_allclose(
            ours.keypoints[person][..., :2], theirs["keypoints"][person][..., :2], rtol=0, atol=0.5
        )
        np.testing.assert_allclose(ours.keypoints[person][..., 2], theirs["keypoints_scores"][person], rtol=0, atol=1e-3)
        assert np.isnan(ours.keypoints[~person]).all()
