"""Frame sources: video files and image folders (cameras and RTSP come later).

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

__all__ = ["Source", "SourceInfo", "VideoFileSource", "ImageFolderSource", "open_source", "redact_url"]

_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


def open_source(uri: str, *, max_frames: int | None = None, queue_size: int = 8) -> Source:
    """Return an unstarted source for a path or URL.

    * a directory: :class:`ImageFolderSource` (fps from ``seqinfo.ini`` or 25);
    * an existing file: :class:`VideoFileSource`;
    * ``file://PATH``: as PATH;
    * another URL (``rtsp://``, ``http://``, ...): not supported yet.

    The source is not opened: call ``start()`` or use it as a context manager.

    Args:
        uri: a file or folder path, or a URL.
        max_frames: stop (without error) after this many frames; None for all.
        queue_size: frame queue capacity.

    Returns:
        The :class:`Source`.

    Raises:
        SourceError: the path does not exist, or ``uri`` is a live URL. Messages
            never contain URL credentials.
    """
    uri = str(uri)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif _URL_SCHEME.match(uri):
        raise SourceError(f"live sources are not supported yet: {redact_url(uri)}")
    path = Path(uri)
    if path.is_dir():
        return ImageFolderSource(uri, max_frames=max_frames, queue_size=queue_size)
    if path.exists():
        return VideoFileSource(uri, max_frames=max_frames, queue_size=queue_size)
    raise SourceError(f"no such file or directory: {uri}")
