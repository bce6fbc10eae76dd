"""The desktop window on a real live stream: a GStreamer RTSP server (tests/rtsp_server.py), the demo model.

The model runs far below the stream's 25 fps on this CPU, so the live policy has to
drop frames: the window shows the newest ones, counts the drops and stays responsive.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest

pytest.importorskip("PyQt6.QtWidgets", reason="the desktop app needs PyQt6 (pip install 'streamseg[gui]')")

from PyQt6.QtCore import QSettings, QStandardPaths  # noqa: E402
from streamseg_app.config import ModelConfig  # noqa: E402
from streamseg_app.session import worker_threads  # noqa: E402
from streamseg_app.window import MainWindow  # noqa: E402

from tests.rtsp_server import RtspServer, server_unavailable  # noqa: E402

QStandardPaths.setTestModeEnabled(True)
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    reason = server_unavailable()
    if reason:
        pytest.skip(reason)
    srv = RtspServer(tmp_path_factory.getbasetemp() / "rtsp-app")
    srv.start()
    yield srv
    srv.kill()


def test_live_rtsp_stream_drops_old_frames_and_closes_cleanly(
    qtbot, server: RtspServer, tmp_path: Path
) -> None:
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    window = MainWindow(
        settings, model=ModelConfig(name="demo", device="cpu"), score_thresh=0.3, output_dir=tmp_path
    )
    qtbot.addWidget(window)
    window.show()
    indices: list[int] = []
    window.controller.frameShown.connect(lambda f: indices.append(f.index))
    window.open_source(server.url)
    qtbot.waitUntil(lambda: len(indices) >= 8, timeout=WAIT_MS)

    info = window.controller.info
    assert info is not None and info.live and not info.seekable
    assert not window.transport.slider.isEnabled() and not window.transport.step_back.isEnabled()
    assert window.status.state.text() == "streaming"
    # The model is slower than the stream: the newest frames are shown, the others dropped and counted.
    assert indices == sorted(indices) and indices[-1] - indices[0] > len(indices) - 1
    qtbot.waitUntil(lambda: window.view.frame is not None and window.view.frame.dropped > 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.status.dropped.text() != "dropped 0", timeout=WAIT_MS)

    window.controller.pause()
    qtbot.waitUntil(lambda: window.status.state.text() == "paused", timeout=WAIT_MS)
    shown = len(indices)
    window.controller.play()
    qtbot.waitUntil(lambda: len(indices) >= shown + 2, timeout=WAIT_MS)
    assert window.status.state.text() == "streaming"

    window.close()
    qtbot.waitUntil(lambda: not worker_threads(), timeout=WAIT_MS)
