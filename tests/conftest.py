"""Shared fixtures: the real test data at ../shared/data, when present."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
VIDEOS = DATA / "videos"


def coco_photo_folder(tmp_path: Path, count: int) -> tuple[Path, list[Path]]:
    """A folder ``tmp_path/val2017`` of links to the first ``count`` real COCO val2017 images
    (of mixed sizes), and those images; skips without the data."""
    images = sorted(data_path("coco", "val2017-80", "images").glob("*.jpg"))[:count]
    folder = tmp_path / "val2017"
    folder.mkdir()
    for image in images:
        (folder / image.name).symlink_to(image)
    return folder, images


def data_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data not found: {path} (the real data lives in ../shared/data beside the repo)")
    return path
