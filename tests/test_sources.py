"""Frame sources on real files: the four test clips, a MOT17 image folder, and broken inputs."""

from __future__ import annotations

import threading
import time
import wave
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamseg.errors import SourceError
from streamseg.sources import (
    ImageFolderSource,
    Source,
    VideoFileSource,
    open_source,
    redact_url,
)
from tests.conftest import coco_photo_folder, data_path

# What PyAV 18 (FFmpeg 8) yields for each clip, checked by full decodes:
# name, width, height, fps, frames, decoder.
CLIPS = [
    ("vtest.avi", 768, 576, Fraction(10), 795, "msmpeg4"),
    ("juggle.mp4", 1280, 720, Fraction(24), 247, "h264"),
    ("bikes.mp4", 640, 272, Fraction(25), 250, "h264"),
    ("cityCC0.mpg", 720, 405, Fraction(25), 190, "mpeg2video"),  # stream starts at 0.54 s
]
CLIP_IDS = [c[0] for c in CLIPS]
MOT17_02 = ("mot17-mini", "MOT17-02-FRCNN")


def read_all(source: Source) -> tuple[list, SourceError | None]:
    """Read (frame, decode_ms) pairs until the end; return them and the error raised, if any."""
    items = []
    try:
        while (item := source.read(timeout=30)) is not None:
            items.append(item)
    except SourceError as e:
        return items, e
    return items, None


@pytest.mark.parametrize(("name", "width", "height", "fps", "frames", "codec"), CLIPS, ids=CLIP_IDS)
def test_clip_opens_with_container_info(
    name: str, width: int, height: int, fps: Fraction, frames: int, codec: str
) -> None:
    path = data_path("videos", name)
    source = VideoFileSource(path)
    try:
        info = source.open()
        assert (info.width, info.height, info.fps, info.num_frames, info.codec) == (
            width,
            height,
            fps,
            frames,
            codec,
        )
        assert info.uri == str(path) and info.live is False
        assert source.decoder_thread_type == "AUTO"  # FFmpeg frame + slice threading
    finally:
        source.stop()
    assert source.decoder_thread_type is None


@pytest.mark.parametrize(("name", "width", "height", "fps", "frames", "codec"), CLIPS, ids=CLIP_IDS)
def test_first_frames_are_rgb_with_container_timestamps(
    name: str, width: int, height: int, fps: Fraction, frames: int, codec: str
) -> None:
    path = data_path("videos", name)
    n = 24
    with VideoFileSource(path, max_frames=n) as source:
        items, error = read_all(source)
    assert error is None and len(items) == n
    for k, (frame, decode_ms) in enumerate(items):
        assert frame.index == k
        assert frame.source_id == str(path)
        assert frame.image.shape == (height, width, 3) and frame.image.dtype == np.uint8
        assert not frame.image.flags.writeable
        assert decode_ms >= 0.0
        # All four clips are constant rate: frame k is at k / fps from the stream start.
        assert frame.pts_s == pytest.approx(k / fps, abs=1e-6)
    assert all(a.t_capture <= b.t_capture for (a, _), (b, _) in zip(items, items[1:], strict=False))
    assert items[-1][0].image.std() > 5  # a real picture, not a blank frame


def test_rgb_channel_order() -> None:
    # juggle.mp4 frame 0: compare with an independent BGR decode by OpenCV.
    path = data_path("videos", "juggle.mp4")
    with VideoFileSource(path, max_frames=1) as source:
        frame = next(iter(source))
    capture = cv2.VideoCapture(str(path))
    ok, bgr = capture.read()
    capture.release()
    if not ok:
        pytest.skip("OpenCV cannot decode juggle.mp4 here")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    diff = np.abs(frame.image.astype(np.int16) - rgb.astype(np.int16))
    swapped = np.abs(frame.image.astype(np.int16) - bgr.astype(np.int16))
    assert diff.mean() < 4 and diff.mean() < swapped.mean()


@pytest.mark.parametrize(("name", "width", "height", "fps", "frames", "codec"), CLIPS, ids=CLIP_IDS)
def test_full_decode_yields_every_frame_without_error(
    name: str, width: int, height: int, fps: Fraction, frames: int, codec: str
) -> None:
    path = data_path("videos", name)
    with VideoFileSource(path) as source:
        items, error = read_all(source)
        assert source.read() is None  # stays at end of stream
    assert error is None
    assert len(items) == frames == source.frames_decoded
    assert source.dropped == 0
    assert [f.index for f, _ in items] == list(range(frames))
    pts = np.array([f.pts_s for f, _ in items])
    assert np.all(np.diff(pts) > 0)
    assert pts[0] == 0.0
    np.testing.assert_allclose(pts, np.arange(frames) / float(fps), atol=1e-6)


def test_iteration_and_max_frames() -> None:
    path = data_path("videos", "bikes.mp4")
    source = open_source(str(path), max_frames=5)
    assert isinstance(source, VideoFileSource)
    with source:
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert source.frames_decoded == 5
    assert not source.running


def test_stop_mid_stream_joins_thread() -> None:
    path = data_path("videos", "vtest.avi")
    source = VideoFileSource(path).start()
    thread = source._thread
    assert thread is not None and thread in threading.enumerate()
    for _ in range(3):
        assert source.read(timeout=10) is not None
    t0 = time.monotonic()
    source.stop()
    assert time.monotonic() - t0 < 1.0
    assert thread not in threading.enumerate()
    assert source.read() is None  # stopped: end of stream, no error
    source.stop()  # idempotent


def test_stop_when_consumer_stopped_reading_and_queue_is_full() -> None:
    path = data_path("videos", "juggle.mp4")
    source = VideoFileSource(path, queue_size=2).start()
    thread = source._thread
    deadline = time.monotonic() + 10
    while source.frames_decoded < 3 and time.monotonic() < deadline:  # 2 queued + 1 blocked in put()
        time.sleep(0.01)
    assert source.frames_decoded == 3 and thread is not None and thread.is_alive()
    t0 = time.monotonic()
    source.stop()
    assert time.monotonic() - t0 < 1.0
    assert thread not in threading.enumerate()
    assert source.frames_decoded == 3  # it did not decode ahead of the queue


def test_context_manager_stops_on_exception() -> None:
    path = data_path("videos", "bikes.mp4")
    with pytest.raises(RuntimeError, match="consumer failed"):
        with VideoFileSource(path) as source:
            source.read(timeout=10)
            raise RuntimeError("consumer failed")
    assert source._thread is not None and source._thread not in threading.enumerate()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match=r"^no such file: .*nope\.mp4$"):
        VideoFileSource(path).open()
    with pytest.raises(SourceError, match=r"^no such file or directory: .*nope\.mp4$"):
        open_source(str(path))


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are notes, not a video\n" * 50)
    with pytest.raises(SourceError) as info:
        open_source(str(path)).start()
    message = str(info.value)
    assert message.startswith(f"cannot open {path}: not a video PyAV can decode (")
    assert "\n" not in message


def test_file_without_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(800, np.int16).tobytes())
    with pytest.raises(SourceError, match=r"tone\.wav has no video stream \(streams: audio\)"):
        VideoFileSource(path).open()


def test_directory_given_to_video_source(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        VideoFileSource(tmp_path).open()


def test_truncated_file_delivers_decodable_frames_then_raises(tmp_path: Path) -> None:
    # juggle.mp4 has its moov atom first, so the first 60 % of its bytes still open.
    data = data_path("videos", "juggle.mp4").read_bytes()
    path = tmp_path / "juggle_cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with VideoFileSource(path) as source:
        assert source.info is not None and source.info.num_frames == 247  # the header still says 247
        items, error = read_all(source)
        assert 100 < len(items) < 247
        assert [f.index for f, _ in items] == list(range(len(items)))
        assert error is not None
        assert str(error) == (
            f"{path}: video is truncated or corrupt after {len(items)} frames "
            "(the container declares 247 frames)"
        )
        with pytest.raises(SourceError, match="truncated"):  # the error sticks
            source.read()


def test_corrupt_packet_raises_after_good_frames(tmp_path: Path) -> None:
    # Overwrite 20 kB in the middle of juggle.mp4: FFmpeg's H.264 decoder raises
    # InvalidDataError on the broken packet (PyAV's error path, not the count check).
    data = bytearray(data_path("videos", "juggle.mp4").read_bytes())
    mid = len(data) // 2
    data[mid : mid + 20_000] = np.random.default_rng(0).bytes(20_000)
    path = tmp_path / "juggle_corrupt.mp4"
    path.write_bytes(bytes(data))
    with VideoFileSource(path) as source:
        items, error = read_all(source)
    assert 10 < len(items) < 247
    assert error is not None
    assert str(error).startswith(f"{path}: video is truncated or corrupt after {len(items)} frames (")


def test_mot17_image_folder() -> None:
    folder = data_path(*MOT17_02, "img1")
    source = open_source(str(folder))
    assert isinstance(source, ImageFolderSource)
    with source:
        items, error = read_all(source)
    info = source.info
    assert info is not None and error is None
    assert (info.width, info.height, info.fps, info.num_frames) == (1920, 1080, Fraction(30), 4)
    assert info.codec == "images (jpg)"
    names = sorted(p.name for p in folder.glob("*.jpg"))
    assert [f.index for f, _ in items] == [0, 1, 2, 3]
    assert [f.pts_s for f, _ in items] == [k / 30 for k in range(4)]
    expected = cv2.cvtColor(cv2.imread(str(folder / names[2])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(items[2][0].image, expected)


def test_mot17_sequence_folder_and_explicit_fps() -> None:
    seq = data_path(*MOT17_02)
    with ImageFolderSource(seq, max_frames=2) as source:
        assert source.info is not None and source.info.num_frames == 4 and source.info.fps == 30
        assert len(list(source)) == 2
    with ImageFolderSource(seq / "img1", fps=12.5, max_frames=2) as source:
        assert source.info is not None and source.info.fps == Fraction(25, 2)
        assert [f.pts_s for f in source] == [0.0, 0.08]


def write_images(folder: Path, names: list[str], size: tuple[int, int] = (48, 64)) -> None:
    folder.mkdir(exist_ok=True)
    for k, name in enumerate(names):
        image = np.full((*size, 3), (10 * k, 0, 255), np.uint8)  # BGR: red channel = 255
        assert cv2.imwrite(str(folder / name), image)


def test_image_folder_sorted_default_fps_and_rgb(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", ["b.png", "a.jpg", "c.BMP"])
    (tmp_path / "imgs" / "readme.txt").write_text("not an image")
    with ImageFolderSource(tmp_path / "imgs") as source:
        frames = list(source)
    assert source.info is not None and source.info.fps == 25
    assert [f.pts_s for f in frames] == [0.0, 0.04, 0.08]
    # a.jpg was written second (blue 10), b.png first (blue 0): sorted by name.
    assert [int(round(f.image[..., 2].mean())) for f in frames] == [10, 0, 20]
    assert all(int(f.image[0, 0, 0]) > 250 for f in frames)  # RGB: red first


def test_image_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(tmp_path / "empty").open()
    with pytest.raises(SourceError, match="no such directory"):
        ImageFolderSource(tmp_path / "missing").open()

    write_images(tmp_path / "bad", ["000001.jpg", "000002.jpg"])
    (tmp_path / "bad" / "000003.jpg").write_text("not a jpeg")
    with ImageFolderSource(tmp_path / "bad") as source:
        items, error = read_all(source)
    assert len(items) == 2
    assert error is not None and "000003.jpg" in str(error) and str(error).startswith("cannot read image")


def test_image_folder_of_real_photos_of_different_sizes(tmp_path: Path) -> None:
    """Each frame has its own image's size and file name (a folder of photos, e.g. COCO val2017)."""
    folder, images = coco_photo_folder(tmp_path, 6)
    with ImageFolderSource(folder) as source:
        items, error = read_all(source)
    assert error is None and len(items) == 6
    sizes = [cv2.imread(str(p)).shape[:2] for p in images]
    assert len(set(sizes)) >= 3  # 640x480, 640x424, 500x333, ...
    assert [f.image.shape[:2] for f, _ in items] == sizes
    assert [f.file_name for f, _ in items] == [p.name for p in images]
    assert source.info is not None and (source.info.height, source.info.width) == sizes[0]
    np.testing.assert_array_equal(items[2][0].image, cv2.cvtColor(cv2.imread(str(images[2])), cv2.COLOR_BGR2RGB))


def test_video_frames_have_no_file_name() -> None:
    with VideoFileSource(data_path("videos", "bikes.mp4"), max_frames=1) as source:
        assert [f.file_name for f in source] == [None]


def test_unsupported_urls_are_refused_without_credentials() -> None:
    with pytest.raises(SourceError, match="unsupported URL scheme 'ftp'") as info:
        open_source("ftp://admin:s3cret@127.0.0.1/x")
    assert "s3cret" not in str(info.value) and "admin" not in str(info.value)
    assert redact_url("http://user@host/x") == "http://host/x"
    assert redact_url("/videos/a@b.mp4") == "/videos/a@b.mp4"


def test_is_live_agrees_with_the_source_open_source_picks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`is_live` (which front-ends ask before passing live options) says live exactly for the URIs
    `open_source` gives a LiveSource for, including a bare number that names an existing file."""
    from streamseg.sources import LiveSource, is_live, open_source

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    (tmp_path / "3").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    uris = ["rtsp://127.0.0.1:8554/cam", "RTSPS://host/x", "http://host/live.m3u8", "https://h/a.ts",
            "cam:0", "camera:2", "/dev/video1", "5", "3", str(video), str(tmp_path), f"file://{video}"]
    for uri in uris:
        assert is_live(uri) == isinstance(open_source(uri), LiveSource), uri
    assert [is_live(u) for u in uris] == [True] * 8 + [False] * 4
