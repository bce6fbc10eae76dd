"""Frame sources: video files, image folders, RTSP/HTTP/HLS streams and local cameras.

Use :func:`open_source` to pick the right source for a path or URL::

    with open_source("video.mp4") as source:
        for frame in source:
            ...
"""

from __future__ import annotations

import re
from pathlib import Path

from streamseg.errors import SourceError
from streamseg.sources.base import Source, SourceInfo, redact_url
from streamseg.sources.file import ImageFolderSource, VideoFileSource
from streamseg.sources.live import Backoff, CameraSource, HttpSource, LiveSource, RtspSource, StateEvent

__all__ = [
    "Source",
    "SourceInfo",
    "VideoFileSource",
    "ImageFolderSource",
    "LiveSource",
    "RtspSource",
    "HttpSource",
    "CameraSource",
    "Backoff",
    "StateEvent",
    "is_live",
    "open_source",
    "redact_url",
]

_URL_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_CAMERA = re.compile(r"^(?:cam(?:era)?:)?(\d+)$|^(/dev/video\d+)$")
_RTSP_SCHEMES, _HTTP_SCHEMES = ("rtsp", "rtsps"), ("http", "https")


def _camera(uri: str) -> re.Match[str] | None:
    """The camera match of ``uri`` (``/dev/videoN``, ``cam:N``, or a bare N that names no file)."""
    cam = _CAMERA.match(uri.strip())
    return cam if cam and (cam.group(2) or not Path(uri).exists()) else None


def is_live(uri: str) -> bool:
    """Whether :func:`open_source` gives a live source for ``uri`` (RTSP, HTTP, a camera).

    Live sources take the ``live_options`` of :func:`open_source`; files and folders refuse them.
    """
    m = _URL_SCHEME.match(str(uri))
    scheme = m.group(1).lower() if m else None
    return scheme in (*_RTSP_SCHEMES, *_HTTP_SCHEMES) or _camera(str(uri)) is not None


def open_source(
    uri: str,
    *,
    max_frames: int | None = None,
    queue_size: int | None = None,
    **live_options: object,
) -> Source:
    """Return an unstarted source for a path, URL or camera.

    * ``rtsp://`` / ``rtsps://`` URL: :class:`RtspSource` (TCP; ``transport="udp"`` on request);
    * ``http://`` / ``https://`` URL (HLS ``.m3u8``, MJPEG, MPEG-TS): :class:`HttpSource`;
    * ``/dev/videoN``, ``cam:N``, ``camera:N`` or a bare index ``N`` (when no file of
      that name exists): :class:`CameraSource` on ``/dev/videoN`` (V4L2);
    * a directory: :class:`ImageFolderSource` (fps from ``seqinfo.ini`` or 25);
    * an existing file: :class:`VideoFileSource`;
    * ``file://PATH``: as PATH.

    The source is not opened: call ``start()`` or use it as a context manager.
    Live sources keep only the newest frames (``drop_oldest``); files keep all.

    Args:
        uri: a file or folder path, a URL or a camera.
        max_frames: stop (without error) after this many frames; None for all.
        queue_size: frame queue capacity; None for the default (8 for files, 2
            for live sources, which keep only the newest frames).
        **live_options: keyword arguments of the live source (``transport``,
            ``open_timeout_s``, ``read_timeout_s``, ``backoff``, ``fail_fast``,
            ``on_state``, ``name``, camera ``size`` and ``fps``); an error for files.

    Returns:
        The :class:`Source`.

    Raises:
        SourceError: the path does not exist, the URL is malformed or its scheme
            is not supported. Messages never contain URL credentials.
        ValueError: live options given for a file or folder.
    """
    uri = str(uri)
    live_kwargs = dict(live_options)
    if queue_size is not None:
        live_kwargs["queue_size"] = queue_size
    m = _URL_SCHEME.match(uri)
    scheme = m.group(1).lower() if m else None
    if scheme in _RTSP_SCHEMES:
        return RtspSource(uri, max_frames=max_frames, **live_kwargs)  # type: ignore[arg-type]
    if scheme in _HTTP_SCHEMES:
        return HttpSource(uri, max_frames=max_frames, **live_kwargs)  # type: ignore[arg-type]
    cam = _camera(uri)
    if cam:
        return CameraSource(cam.group(2) or int(cam.group(1)), max_frames=max_frames, **live_kwargs)  # type: ignore[arg-type]
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif scheme is not None:
        raise SourceError(
            f"unsupported URL scheme {scheme!r} in {redact_url(uri)} (use rtsp://, rtsps://, http://, https://)"
        )
    if live_options:
        raise ValueError(f"live source options {sorted(live_options)} given for a file or folder: {uri}")
    queue_size = 8 if queue_size is None else queue_size
    path = Path(uri)
    if path.is_dir():
        return ImageFolderSource(uri, max_frames=max_frames, queue_size=queue_size)
    if path.exists():
        return VideoFileSource(uri, max_frames=max_frames, queue_size=queue_size)
    raise SourceError(f"no such file or directory: {uri}")
