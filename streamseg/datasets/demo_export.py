"""The demo world's files: COCO and MOT ground truth, clips, training sets.

:func:`write_clip` renders a clip (:func:`~streamseg.datasets.demo_world.clip_frames`)
and writes an H.264 MP4 (:class:`streamseg.sinks.VideoWriter`), a COCO json (images
with ``id = frame_index + 1`` and a ``frame_index`` field; RLE masks, ``bbox`` xywh,
``area``, ``iscrowd`` 0, ``keypoints``, ``num_keypoints``, ``track_id``) and a
MOT-challenge ``gt.txt``. :func:`write_dataset` writes a training set (JPEG images +
one COCO json) from many short clips. :func:`run_demo` is the first step of
``streamseg demo``.

Every MP4 written here carries the container tag ``comment`` =
:data:`DEMO_CLIP_COMMENT` + its description, so :func:`is_demo_clip` knows a demo-world
clip wherever it is copied, and :func:`demo_model_warning` (``streamseg run``, the window)
warns when the demo model is run on anything else.

Seeds: training sets use the training stream (:data:`~streamseg.datasets.demo_world.SPLIT_TRAIN`),
:func:`write_clip` and :func:`write_synthetic_clip` the held-out stream
(:data:`~streamseg.datasets.demo_world.SPLIT_HELDOUT`), so a held-out clip never
equals a training clip, whatever the seeds.
"""

from __future__ import annotations

import json
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamseg.datasets.demo_objects import PERSON
from streamseg.datasets.demo_world import (
    DEMO_FPS,
    DEMO_SIZE,
    HELDOUT_SEED,
    SPLIT_HELDOUT,
    SPLIT_TRAIN,
    ObjectGT,
    clip_frames,
    synthetic_frames,
)
from streamseg.models.coco import COCO_KEYPOINT_NAMES, COCO_SKELETON
from streamseg.models.demo_model import DEMO_CATEGORIES

__all__ = [
    "DEMO_CLIP_COMMENT",
    "coco_categories",
    "demo_model_warning",
    "is_demo_clip",
    "run_demo",
    "write_clip",
    "write_dataset",
    "write_synthetic_clip",
]

_K = len(COCO_KEYPOINT_NAMES)

#: Start of the ``comment`` container tag of every clip written here (MP4 ``\xa9cmt``).
DEMO_CLIP_COMMENT = "streamseg demo world clip"


def _tag_demo_clip(path: Path, description: str) -> None:
    """Remux the MP4 at ``path`` (no re-encoding) with ``comment`` and ``title`` tags marking a demo clip.

    The writer (:class:`~streamseg.sinks.VideoWriter`) writes its header when created, so the
    tags are added by copying the packets into a new file that replaces the old one.
    """
    import av

    tmp = path.with_name(f".{path.name}.tagging.mp4")
    try:
        with av.open(str(path)) as src, av.open(
            str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}
        ) as dst:
            dst.metadata["comment"] = f"{DEMO_CLIP_COMMENT}: {description}"
            dst.metadata["title"] = "streamseg demo world"
            stream = src.streams.video[0]
            out = dst.add_stream_from_template(stream)
            for packet in src.demux(stream):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                packet.stream = out
                dst.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_demo_clip(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` is a video file of the demo world (tagged by :func:`write_clip` or
    :func:`write_synthetic_clip`: container ``comment`` starting with :data:`DEMO_CLIP_COMMENT`).

    False for anything else: other files, folders, URLs, cameras, unreadable files. Reads only
    the container header (a few milliseconds).
    """
    text = str(uri)
    path = Path(text[len("file://") :] if text.startswith("file://") else text)
    try:
        if not path.is_file():
            return False
        import av

        with av.open(str(path)) as container:
            return str(container.metadata.get("comment", "")).startswith(DEMO_CLIP_COMMENT)
    except Exception:  # noqa: BLE001 - not a readable video: not a demo clip (the source reports it)
        return False


def demo_model_warning(model_name: str, uri: str) -> str | None:
    """The warning to show when the demo model runs on a source that is not a demo-world clip, or None.

    The demo model was trained only on the synthetic demo world: on real video it finds
    nonsense with high confidence (a juggling ball as "car 0.99"). ``streamseg run`` and the
    window call this once per source, after it opened.

    Args:
        model_name: the registry name of the model about to run.
        uri: the source (path, URL or camera; credentials never appear in the message).

    Returns:
        One line naming the source and how to get real weights; None for another model or
        a demo-world clip.
    """
    if model_name != "demo" or is_demo_clip(uri):
        return None
    from streamseg.models.registry import DEFAULT_MODEL, MODELS
    from streamseg.sources import redact_url

    real = MODELS[DEFAULT_MODEL]
    return (
        f"the demo model knows only the synthetic demo world (`streamseg demo`), and {redact_url(uri)} "
        f"is not a demo-world clip: its detections here are meaningless. For real video use a COCO "
        f"model, e.g. --model {DEFAULT_MODEL} with torchvision's weights ({real.url}); `streamseg models` "
        f"says where each model's weights are found or where to put them"
    )


def coco_categories() -> list[dict[str, Any]]:
    """COCO ``categories`` of the demo world; id = label index, the person has keypoints and skeleton.

    The skeleton is COCO's 1-based pairs (person_keypoints_val2017.json).
    """
    out: list[dict[str, Any]] = []
    for cid, name in enumerate(DEMO_CATEGORIES):
        if cid == 0:
            continue
        cat: dict[str, Any] = {"id": cid, "name": name, "supercategory": name}
        if cid == PERSON:
            cat["keypoints"] = list(COCO_KEYPOINT_NAMES)
            cat["skeleton"] = [[a + 1, b + 1] for a, b in COCO_SKELETON]
        out.append(cat)
    return out


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _annotation(obj: ObjectGT, ann_id: int, image_id: int) -> dict[str, Any]:
    ann: dict[str, Any] = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": obj.category_id,
        "segmentation": _rle(obj.mask),
        "bbox": [round(v, 2) for v in obj.bbox],
        "area": float(obj.area),
        "iscrowd": 0,
        "track_id": obj.track_id,
        "visibility": round(obj.visibility, 4),
    }
    if obj.keypoints is not None:
        flat = obj.keypoints.reshape(-1)
        ann["keypoints"] = [round(float(v), 2) if j % 3 != 2 else int(v) for j, v in enumerate(flat)]
        ann["num_keypoints"] = int((obj.keypoints[:, 2] > 0).sum())
    else:
        ann["keypoints"] = [0] * (3 * _K)
        ann["num_keypoints"] = 0
    return ann


def _coco(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]], description: str
) -> dict[str, Any]:
    return {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(),
    }


def write_clip(
    out_dir: str | Path,
    *,
    seed: int = HELDOUT_SEED,
    num_frames: int = 120,
    size: tuple[int, int] = DEMO_SIZE,
    fps: int = DEMO_FPS,
    split: int = SPLIT_HELDOUT,
    name: str = "clip",
) -> dict[str, Path]:
    """Render a clip and write it as ``<name>.mp4``, ``<name>.json`` (COCO) and ``gt.txt`` (MOT).

    COCO json: ``images`` with ``id = frame_index + 1``, ``frame_index`` (0-based),
    ``file_name`` ``"<name>.mp4#<frame_index>"``, width, height; ``annotations`` as
    :class:`ObjectGT` (RLE ``segmentation``, ``bbox`` xywh, ``area``, ``iscrowd`` 0,
    ``keypoints`` (51 numbers, zeros for non-persons), ``num_keypoints``, ``track_id``,
    ``visibility``); ``categories`` from :func:`coco_categories`.

    MOT ``gt.txt``: one line per annotation, ``frame, id, x, y, w, h, 1, class, visibility``
    (frame 1-based; box = tight box of the visible mask; visibility = visible fraction
    of the object's in-image pixels; MOT-challenge 2016 ground-truth layout).

    Args:
        out_dir: folder (created).
        seed: clip seed.
        num_frames: frames.
        size: (H, W) pixels.
        fps: frame rate, frames per second.
        split: random stream (held-out by default).
        name: base name of the MP4 and json.

    Returns:
        ``{"video": mp4 path, "coco": json path, "mot": gt.txt path}``.
    """
    from streamseg.sinks.video import VideoWriter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"video": out / f"{name}.mp4", "coco": out / f"{name}.json", "mot": out / "gt.txt"}
    h, w = size
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    mot_lines: list[str] = []
    with VideoWriter(paths["video"], width=w, height=h, fps=Fraction(fps)) as writer:
        for frame in clip_frames(seed=seed, num_frames=num_frames, size=size, split=split):
            writer.write(frame.image, frame.index / fps)
            image_id = frame.index + 1
            images.append(
                {
                    "id": image_id,
                    "frame_index": frame.index,
                    "file_name": f"{paths['video'].name}#{frame.index}",
                    "width": w,
                    "height": h,
                }
            )
            for obj in frame.objects:
                annotations.append(_annotation(obj, len(annotations) + 1, image_id))
                x, y, bw, bh = obj.bbox
                mot_lines.append(
                    f"{image_id},{obj.track_id},{x:.2f},{y:.2f},{bw:.2f},{bh:.2f},1,{obj.category_id},"
                    f"{obj.visibility:.4f}"
                )
    desc = f"streamseg demo world clip, seed {seed}, split {split}, {num_frames} frames, {w}x{h} @ {fps} fps"
    _tag_demo_clip(paths["video"], f"seed {seed}, split {split}, {num_frames} frames, {w}x{h} @ {fps} fps")
    paths["coco"].write_text(json.dumps(_coco(images, annotations, desc)))
    paths["mot"].write_text("\n".join(mot_lines) + ("\n" if mot_lines else ""))
    return paths


def write_dataset(
    out_dir: str | Path,
    *,
    num_clips: int,
    frames_per_clip: int = 48,
    frame_stride: int = 3,
    seed: int = 0,
    size: tuple[int, int] = DEMO_SIZE,
    jpeg_quality: int = 85,
    progress: bool = False,
) -> Path:
    """Write a COCO-format training set of demo-world frames (JPEG + one json).

    Clip ``i`` uses seed ``seed * 100_003 + i`` on the training stream
    (:data:`SPLIT_TRAIN`); every ``frame_stride``-th of its ``frames_per_clip`` frames is
    kept. Images are ``images/c<clip>_f<frame>.jpg`` (JPEG, like the compressed frames
    the model sees at inference).

    Args:
        out_dir: folder (created); gets ``images/`` and ``annotations.json``.
        num_clips: number of clips, >= 1.
        frames_per_clip: length of each rendered clip.
        frame_stride: keep every n-th frame.
        seed: dataset seed.
        size: (H, W) pixels.
        jpeg_quality: cv2 JPEG quality (0-100).
        progress: show a tqdm bar.

    Returns:
        The path of ``annotations.json``.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    h, w = size
    for clip in tqdm(range(int(num_clips)), desc="generating clips", unit="clip", disable=not progress):
        clip_seed = int(seed) * 100_003 + clip
        keep = frozenset(range(0, frames_per_clip, frame_stride))
        frames = clip_frames(
            seed=clip_seed, num_frames=frames_per_clip, size=size, split=SPLIT_TRAIN, only=keep
        )
        for frame in frames:
            name = f"c{clip:05d}_f{frame.index:03d}.jpg"
            cv2.imwrite(
                str(img_dir / name),
                cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)],
            )
            image_id = len(images) + 1
            images.append(
                {"id": image_id, "file_name": name, "width": w, "height": h, "frame_index": frame.index}
            )
            for obj in frame.objects:
                annotations.append(_annotation(obj, len(annotations) + 1, image_id))
    path = out / "annotations.json"
    desc = f"streamseg demo world training set: {num_clips} clips, seed {seed}, stride {frame_stride}"
    path.write_text(json.dumps(_coco(images, annotations, desc)))
    return path


def write_synthetic_clip(
    path: str | Path,
    *,
    seed: int = HELDOUT_SEED,
    num_frames: int = 48,
    size: tuple[int, int] = DEMO_SIZE,
    fps: int = DEMO_FPS,
) -> Path:
    """Write only the MP4 of a held-out clip (no ground truth); see :func:`write_clip`.

    Args:
        path: output .mp4 path (parent folders are created).
        seed: clip seed (held-out stream).
        num_frames: frames.
        size: (H, W) pixels.
        fps: frame rate (frames per second).

    Returns:
        The path written.
    """
    from streamseg.sinks.video import VideoWriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, width=size[1], height=size[0], fps=Fraction(fps)) as writer:
        for k, img in enumerate(synthetic_frames(seed=seed, num_frames=num_frames, size=size)):
            writer.write(img, k / fps)
    _tag_demo_clip(path, f"seed {seed}, held-out, {num_frames} frames, {size[1]}x{size[0]} @ {fps} fps")
    return path


def run_demo(
    out_dir: str | Path,
    *,
    num_frames: int = 120,
    seed: int = HELDOUT_SEED,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate the held-out demo clip with its ground truth (the first step of ``streamseg demo``).

    The caller then runs the pipeline on ``paths["video"]`` with model ``demo``
    (``min_size`` :data:`~streamseg.models.demo_model.DEMO_MIN_SIZE`) and scores the JSONL with
    ``streamseg.eval.coco.evaluate_coco(jsonl, paths["coco"])``.

    Args:
        out_dir: folder (created).
        num_frames: clip length (>= 100 for the published figures).
        seed: held-out seed (training never uses the held-out stream).
        progress: unused (the clip renders in a few seconds); kept for the caller's signature.

    Returns:
        ``{"video", "coco", "mot"}`` paths plus ``"seconds"`` (generation wall time),
        ``"frames"``, ``"size"`` (H, W) and ``"fps"``.
    """
    t0 = time.perf_counter()
    paths = write_clip(out_dir, seed=seed, num_frames=num_frames)
    return {
        **paths,
        "seconds": time.perf_counter() - t0,
        "frames": int(num_frames),
        "size": DEMO_SIZE,
        "fps": DEMO_FPS,
    }
