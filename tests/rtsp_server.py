"""Test helper: a real RTSP server on 127.0.0.1 that serves a video file in a loop.

Two halves in one file:

* imported by the tests (the project's venv): :class:`RtspServer` decodes the
  first frames of a file from ``../shared/data/videos`` to raw I420 once (PyAV),
  then starts this file as a script with the SYSTEM python3 (``/usr/bin/python3``,
  which has ``python3-gi``) on a free port, waits until it listens, and can
  :meth:`~RtspServer.kill` and :meth:`~RtspServer.start` it again on the same port.
  :class:`GarbageServer` is a TCP server that accepts and writes random bytes.
* run as a script (system python3): a GStreamer RTSP server
  (``GstRtspServer``) whose media is ``appsrc -> x264enc -> rtph264pay``, fed
  from the raw frames in a loop, one every ``1 / fps`` seconds, live
  (``do-timestamp``), shared between clients.

Needs Debian's ``gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly`` (x264enc): :func:`server_unavailable`
says why the server cannot run here (tests skip with that reason).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
DEFAULT_VIDEO = "bikes.mp4"  # 640x272, 25 fps, 250 frames, H.264
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('appsrc', 'videoconvert', 'x264enc', 'rtph264pay') "
    "if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_unavailable_cache: list[str | None] = []


def server_unavailable() -> str | None:
    """Why the GStreamer RTSP server cannot run here, or None if it can."""
    if _unavailable_cache:
        return _unavailable_cache[0]
    reason: str | None = None
    if not Path(SYSTEM_PYTHON).exists():
        reason = f"{SYSTEM_PYTHON} not found (the RTSP test server runs on the system python3 with python3-gi)"
    elif not (VIDEOS / DEFAULT_VIDEO).exists():
        reason = f"test video not found: {VIDEOS / DEFAULT_VIDEO}"
    else:
        try:
            proc = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            reason = f"cannot run {SYSTEM_PYTHON}: {e}"
        else:
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                reason = (
                    "GStreamer RTSP server not available "
                    "(apt-get install gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
                    f"gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly): {last}"
                )
            elif proc.stdout.strip():
                reason = f"GStreamer elements missing: {proc.stdout.strip()} (install gstreamer1.0-plugins-*)"
    _unavailable_cache.append(reason)
    return reason


def prepare_raw(
    video: Path, out: Path, *, width: int = 320, height: int = 136, max_frames: int = 125
) -> Path:
    """Decode the first ``max_frames`` frames of ``video`` to raw I420 at ``width`` x ``height`` (cached)."""
    if out.exists():
        return out
    import av  # the venv side only

    tmp = out.with_suffix(".part")
    with av.open(str(video)) as container, open(tmp, "wb") as f:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= max_frames:
                break
            f.write(frame.reformat(width=width, height=height, format="yuv420p").to_ndarray().tobytes())
    tmp.rename(out)
    return out


class RtspServer:
    """A GStreamer RTSP server subprocess serving a file in a loop at ``rtsp://127.0.0.1:PORT/stream``.

    Args:
        workdir: a folder for the raw frame cache and the server log.
        video: the file name under ``../shared/data/videos``.
        fps: frames per second served.
        width, height: served frame size in pixels (even).
        port: TCP port; None picks a free one (kept across :meth:`kill`/:meth:`start`).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        video: str = DEFAULT_VIDEO,
        fps: int = 25,
        width: int = 320,
        height: int = 136,
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.fps, self.width, self.height = fps, width, height
        self.port = port or free_port()
        self.raw = prepare_raw(VIDEOS / video, self.workdir / f"{Path(video).stem}-{width}x{height}.i420",
                               width=width, height=height)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.workdir / f"rtsp-server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def start(self, timeout: float = 20.0) -> RtspServer:
        """Start the server and wait until it accepts TCP connections.

        Raises:
            RuntimeError: it exited or did not listen within ``timeout`` seconds.
        """
        args = [SYSTEM_PYTHON, __file__, "--raw", str(self.raw), "--port", str(self.port),
                "--size", f"{self.width}x{self.height}", "--fps", str(self.fps)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"RTSP server exited ({self.proc.returncode}); see {self.log}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"RTSP server did not listen on port {self.port} within {timeout} s; see {self.log}")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL, as a crashed camera) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def two_servers(work: Path):  # noqa: ANN201 - a generator for pytest fixtures
    """Yield two started :class:`RtspServer` (raw frames under ``work``) and kill both after;
    skip the test with the reason when the server cannot run here."""
    import pytest

    reason = server_unavailable()
    if reason:
        pytest.skip(reason)
    a, b = RtspServer(work).start(), RtspServer(work).start()
    yield a, b
    a.kill()
    b.kill()


class GarbageServer:
    """A TCP server on 127.0.0.1 that accepts connections and writes random bytes until they close."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="garbage-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def _serve(self) -> None:
        rng = random.Random(0)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._spew, args=(conn, rng.randbytes(4096)), daemon=True).start()

    def _spew(self, conn: socket.socket, junk: bytes) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(1.0)
            while not self._stop.is_set():
                conn.sendall(junk)
                time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(2)

    def __enter__(self) -> GarbageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the server itself (system python3 with python3-gi) ------------------------------------


def _serve(raw: str, port: int, width: int, height: int, fps: int, mount: str = "/stream") -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    frame_size = width * height * 3 // 2
    data = Path(raw).read_bytes()
    frames = [data[i : i + frame_size] for i in range(0, len(data) - frame_size + 1, frame_size)]
    if not frames:
        raise SystemExit(f"no frames in {raw}")

    launch = (
        f"( appsrc name=src is-live=true do-timestamp=true format=time "
        f"caps=video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 "
        f"! queue max-size-buffers=4 leaky=downstream "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=600 threads=1 "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )

    def on_configure(factory: object, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_child_by_name("src")
        state = {"i": 0, "live": True, "t0": time.monotonic()}

        def push() -> bool:
            if not state["live"]:
                return False
            # Catch up on the wall clock so the mean rate is exactly fps.
            due = int((time.monotonic() - state["t0"]) * fps) + 1
            while state["i"] < due:
                buf = Gst.Buffer.new_wrapped(frames[state["i"] % len(frames)])
                state["i"] += 1
                if appsrc.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                    state["live"] = False
                    return False
            return True

        def on_unprepared(*_: object) -> None:
            state["live"] = False

        media.connect("unprepared", on_unprepared)
        GLib.timeout_add(max(1, 1000 // (2 * fps)), push)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    factory.connect("media-configure", on_configure)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print(f"rtsp server on rtsp://127.0.0.1:{port}{mount} ({len(frames)} frames in a loop)", flush=True)
    GLib.MainLoop().run()


def _main(argv: list[str]) -> None:
    import argparse

    p = argparse.ArgumentParser(description="GStreamer RTSP test server: raw I420 frames in a loop")
    p.add_argument("--raw", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--size", default="320x136")
    p.add_argument("--fps", type=int, default=25)
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.split("x"))
    _serve(a.raw, a.port, w, h, a.fps)


if __name__ == "__main__":
    os.environ.setdefault("GST_DEBUG", "1")
    _main(sys.argv[1:])
