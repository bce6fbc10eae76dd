"""`streamseg train`: a few iterations on a tiny generated dataset; checkpoints; bad input."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from streamseg.datasets.demo_export import write_dataset
from streamseg.errors import ConfigError, SourceError, WeightsError
from streamseg.models.demo_model import DEMO_CATEGORIES, DEMO_MIN_SIZE
from streamseg.models.registry import get_model_spec
from streamseg.models.weights import load_model
from streamseg.train import CocoTrainingSet, TrainConfig, add_parser, build_model, run, train


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 clips x 1 frame: 2 images (a fixed batch, so the loss must fall)."""
    root = tmp_path_factory.mktemp("tiny")
    write_dataset(root, num_clips=2, frames_per_clip=1, frame_stride=1, seed=5)
    return root


def _losses(log: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in log.read_text().splitlines()]


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
def test_loss_goes_down_and_checkpoint_reloads(tiny: Path, tmp_path: Path) -> None:
    dataset = CocoTrainingSet(tiny / "annotations.json", tiny / "images")
    assert len(dataset) == 2 and dataset.categories == DEMO_CATEGORIES and dataset.has_keypoints
    image, target = dataset[0]
    assert image.shape == (3, 240, 320) and target["keypoints"].shape[1:] == (17, 3)
    assert target["masks"].shape[0] == target["boxes"].shape[0] == target["labels"].shape[0] > 0
    out = tmp_path / "run"
    config = TrainConfig(
        out_dir=out, iters=14, batch_size=2, lr=2e-3, warmup=1, seed=0, threads=1,
        checkpoint_every=7, log_every=1, progress=False, final=out / "model.pt",
    )  # fmt: skip
    summary = train(dataset, config)
    assert summary["iterations"] == 14
    losses = _losses(out / "log.jsonl")
    assert len(losses) == 14
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses

    # The final checkpoint loads through the registry path (--model demo --weights PATH).
    model, random = load_model(get_model_spec("demo"), out / "model.pt", min_size=DEMO_MIN_SIZE, max_size=400)
    assert not random and not model.training
    saved = torch.load(out / "model.pt", weights_only=True)
    assert saved["categories"] == list(DEMO_CATEGORIES)
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved["model"][key]), key
    with torch.inference_mode():
        detections = model([image])[0]
    assert {"boxes", "masks", "keypoints"} <= set(detections)

    # --resume continues the iteration count from last.pt.
    config2 = TrainConfig(
        out_dir=out, iters=16, batch_size=2, seed=0, threads=1, resume=out / "last.pt",
        log_every=1, progress=False,
    )  # fmt: skip
    assert train(dataset, config2)["iterations"] == 16
    assert len(_losses(out / "log.jsonl")) == 16


def test_cli_synthetic(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["train", "--synthetic", "1", "--frames-per-clip", "2", "--frame-stride", "2", "--out", str(tmp_path),
         "--iters", "1", "--batch-size", "1", "--threads", "1", "--no-progress"]
    )  # fmt: skip
    assert args.func is run and run(args) == 0
    assert (tmp_path / "final.pt").is_file() and (tmp_path / "last.pt").is_file()
    assert (tmp_path / "data" / "annotations.json").is_file()


def test_missing_images(tiny: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(tiny / "images", images)
    next(images.iterdir()).unlink()
    with pytest.raises(SourceError, match="1 of 2 images .* missing"):
        CocoTrainingSet(tiny / "annotations.json", images)
    with pytest.raises(SourceError, match="image folder not found"):
        CocoTrainingSet(tiny / "annotations.json", tmp_path / "nowhere")


def test_empty_dataset(tiny: Path, tmp_path: Path) -> None:
    data = json.loads((tiny / "annotations.json").read_text())
    data["annotations"] = []
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="empty dataset"):
        CocoTrainingSet(empty, tiny / "images")
    data["images"] = []
    empty.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="empty dataset"):
        CocoTrainingSet(empty, tiny / "images")
    empty.write_text("[]")
    with pytest.raises(ConfigError, match="not a COCO"):
        CocoTrainingSet(empty, tiny / "images")
    with pytest.raises(ConfigError, match="no such"):
        CocoTrainingSet(tmp_path / "none.json", tiny / "images")


def test_checkpoint_of_another_architecture(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"model": build_model(3).state_dict()}, other)  # 3 classes, not 5
    dataset = CocoTrainingSet(tiny / "annotations.json", tiny / "images")
    config = TrainConfig(out_dir=tmp_path / "run", iters=1, batch_size=1, resume=other, progress=False)
    with pytest.raises(WeightsError, match="another architecture"):
        train(dataset, config)
    with pytest.raises(WeightsError, match="not a demo state dict"):
        load_model(get_model_spec("demo"), other)
    with pytest.raises(WeightsError, match="no such checkpoint"):
        train(dataset, TrainConfig(out_dir=tmp_path / "run", resume=tmp_path / "x.pt", progress=False))


def test_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        TrainConfig(out_dir=tmp_path, iters=0)
    with pytest.raises(ConfigError):
        TrainConfig(out_dir=tmp_path, batch_size=0)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    with pytest.raises(ConfigError, match="--coco"):
        run(parser.parse_args(["train", "--out", str(tmp_path)]))
