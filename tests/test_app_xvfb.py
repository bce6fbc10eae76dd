"""`streamseg gui` on a real X server (Xvfb), without one, and with a library missing.

Qt aborts (exit 134) when its platform plugin cannot start; `streamseg gui` checks first
(streamseg_app.preflight) and ends with one line and exit 1. These tests run the real
`streamseg gui` process with QT_QPA_PLATFORM unset, so Qt picks its platform as on a
desktop, and the real check on PyQt6's real xcb plugin. The X server is an Xvfb the tests
start themselves (skipped with a reason where the Xvfb binary is absent: apt-get install
xvfb); the window is found, checked and closed (WM_DELETE_WINDOW, as the close button
does) through libX11, which the xcb plugin needs anyway.
"""

from __future__ import annotations

import ctypes
import os
import re
import resource
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("PyQt6.QtCore", reason="the desktop app needs PyQt6 (pip install 'streamseg[gui]')")
if not sys.platform.startswith("linux"):
    pytest.skip("Qt's xcb platform and ldd are Linux things", allow_module_level=True)

from PyQt6.QtCore import QLibraryInfo
from streamseg_app import preflight

from streamseg.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PLATFORMS = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
XCB_PLUGIN = PLATFORMS / "libqxcb.so"
NO_DISPLAY = "streamseg: error: no display: set DISPLAY, or use QT_QPA_PLATFORM=offscreen"
#: The window loads torch and the demo model: generous on a shared 2-core CPU.
START_S = 300.0

#: `ldd` on PyQt6 6.11's libqxcb.so on a fresh Debian 12 machine (captured before
#: libxcb-icccm4 and libxcb-keysyms1 were installed; libxcb-cursor0 was there all along,
#: although Qt's own hint names it). Abridged: the libraries under them are left out.
LDD_FRESH_DEBIAN = """\
\tlinux-vdso.so.1 (0x00007fcc41170000)
\tlibQt6XcbQpa.so.6 => /venv/site-packages/PyQt6/Qt6/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007fcc410a2000)
\tlibQt6Gui.so.6 => /venv/site-packages/PyQt6/Qt6/plugins/platforms/../../lib/libQt6Gui.so.6 (0x00007fcc40400000)
\tlibGL.so.1 => /lib/x86_64-linux-gnu/libGL.so.1 (0x00007fcc4100f000)
\tlibQt6Core.so.6 => /venv/site-packages/PyQt6/Qt6/plugins/platforms/../../lib/libQt6Core.so.6 (0x00007fcc3fc00000)
\tlibxkbcommon.so.0 => /lib/x86_64-linux-gnu/libxkbcommon.so.0 (0x00007fcc40fc7000)
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007fcc40fbc000)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007fcc40fb5000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007fcc40fad000)
\tlibxcb-image.so.0 => /lib/x86_64-linux-gnu/libxcb-image.so.0 (0x00007fcc40fa7000)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-randr.so.0 => /lib/x86_64-linux-gnu/libxcb-randr.so.0 (0x00007fcc40f94000)
\tlibxcb-render-util.so.0 => /lib/x86_64-linux-gnu/libxcb-render-util.so.0 (0x00007fcc3f800000)
\tlibxcb-shm.so.0 => /lib/x86_64-linux-gnu/libxcb-shm.so.0 (0x00007fcc40f8f000)
\tlibxcb-shape.so.0 => /lib/x86_64-linux-gnu/libxcb-shape.so.0 (0x00007fcc40f69000)
\tlibxcb-xkb.so.1 => /lib/x86_64-linux-gnu/libxcb-xkb.so.1 (0x00007fcc40f4c000)
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007fcc40f22000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fcc3f21e000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibEGL.so.1 => /lib/x86_64-linux-gnu/libEGL.so.1 (0x00007fcc403e5000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007fcc41172000)
"""

# Variables that choose Qt's platform or where it looks for plugins: every test sets its own.
_QT_ENV = ("DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET", "XDG_SESSION_TYPE", "QT_QPA_PLATFORM",
           "QT_QPA_PLATFORM_PLUGIN_PATH", "QT_PLUGIN_PATH")  # fmt: skip


def gui_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _QT_ENV}
    return {**env, **overrides}


def _no_core_dump() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the old abort() left a core file behind


def gui_command(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "streamseg.cli", "gui", *args, "--settings", str(tmp_path / "gui.ini"),
            "--output-dir", str(tmp_path / "out")]  # fmt: skip


def run_gui(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gui_command(tmp_path, *args), env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=START_S, check=False, preexec_fn=_no_core_dump,
    )  # fmt: skip


def dlopen_error(plugin: Path, env: dict[str, str] | None = None) -> str | None:
    """The loader's own verdict, independent of preflight: dlopen ``plugin`` in a child process."""
    code = (
        "import ctypes, os, sys\n"
        "try:\n    ctypes.CDLL(sys.argv[1], mode=os.RTLD_LAZY)\nexcept OSError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(plugin)], capture_output=True, text=True,
                         env=env, timeout=60, check=True)  # fmt: skip
    return out.stdout.strip() or None


def really_missing() -> list[str]:
    """Libraries the real xcb plugin cannot find here, by dlopen (one at a time), not by preflight."""
    error = dlopen_error(XCB_PLUGIN)
    match = re.match(r"([^\s:]+): cannot open shared object file", error or "")
    return [match.group(1)] if match else []


# ----------------------------------------------------------------------------- X server


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    """A private Xvfb on a free display number (Xvfb picks it: -displayfd); yields DISPLAY."""
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb not found (apt-get install xvfb): the real-window tests need an X server")
    read, write = os.pipe()
    proc = subprocess.Popen(
        [binary, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 60)
        number = os.read(read, 64).decode().strip() if ready else ""
        if not number:
            proc.kill()
            pytest.fail(f"Xvfb did not start: {proc.communicate(timeout=10)[1].decode(errors='replace')}")
        yield f":{number}"
    finally:
        os.close(read)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class _XWindowAttributes(ctypes.Structure):  # Xlib.h
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int),
                ("border_width", ctypes.c_int), ("depth", ctypes.c_int), ("visual", ctypes.c_void_p),
                ("root", ctypes.c_ulong), ("class_", ctypes.c_int), ("bit_gravity", ctypes.c_int),
                ("win_gravity", ctypes.c_int), ("backing_store", ctypes.c_int),
                ("backing_planes", ctypes.c_ulong), ("backing_pixel", ctypes.c_ulong),
                ("save_under", ctypes.c_int), ("colormap", ctypes.c_ulong), ("map_installed", ctypes.c_int),
                ("map_state", ctypes.c_int), ("all_event_masks", ctypes.c_long),
                ("your_event_mask", ctypes.c_long), ("do_not_propagate_mask", ctypes.c_long),
                ("override_redirect", ctypes.c_int), ("screen", ctypes.c_void_p)]  # fmt: skip


class _XClientMessageEvent(ctypes.Structure):  # Xlib.h
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]  # fmt: skip


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _XClientMessageEvent), ("pad", ctypes.c_long * 24)]


_X_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_IGNORE_X_ERRORS = _X_ERROR_HANDLER(lambda display, event: 0)  # a window vanishing mid-query is fine
IS_VIEWABLE, CLIENT_MESSAGE = 2, 33


class X11:
    """The few Xlib calls the test needs: top-level windows, their titles and state, closing one."""

    def __init__(self, display: str) -> None:
        x = self.x = ctypes.CDLL("libX11.so.6")
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XSetErrorHandler.argtypes = [_X_ERROR_HANDLER]
        x.XSetErrorHandler.restype = ctypes.c_void_p
        for name in ("XDefaultRootWindow", "XInternAtom"):
            getattr(x, name).restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        x.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong] + [ctypes.c_void_p] * 4
        x.XGetWindowAttributes.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p]
        # display, window, property, offset, length, delete, type, then five out-pointers
        x.XGetWindowProperty.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long,
                                         ctypes.c_long, ctypes.c_int, ctypes.c_ulong,
                                         *[ctypes.c_void_p] * 5]  # fmt: skip
        x.XSendEvent.argtypes = [
            ctypes.c_void_p,
            ctypes.c_ulong,
            ctypes.c_int,
            ctypes.c_long,
            ctypes.c_void_p,
        ]
        for name in ("XFree", "XSync", "XCloseDisplay"):
            getattr(x, name).argtypes = [ctypes.c_void_p] + ([ctypes.c_int] if name == "XSync" else [])
        x.XSetErrorHandler(_IGNORE_X_ERRORS)
        self.dpy = x.XOpenDisplay(display.encode())
        assert self.dpy, f"cannot open X display {display}"
        self.root = x.XDefaultRootWindow(self.dpy)

    def atom(self, name: str) -> int:
        return self.x.XInternAtom(self.dpy, name.encode(), False)

    def top_level(self) -> list[int]:
        root, parent, children, count = (
            ctypes.c_ulong(),
            ctypes.c_ulong(),
            ctypes.POINTER(ctypes.c_ulong)(),
            ctypes.c_uint(),
        )
        if not self.x.XQueryTree(self.dpy, self.root, ctypes.byref(root), ctypes.byref(parent),
                                 ctypes.byref(children), ctypes.byref(count)):  # fmt: skip
            return []
        windows = [children[i] for i in range(count.value)]
        if children:
            self.x.XFree(children)
        return windows

    def title(self, window: int) -> str:
        kind, fmt, n, after = ctypes.c_ulong(), ctypes.c_int(), ctypes.c_ulong(), ctypes.c_ulong()
        data = ctypes.POINTER(ctypes.c_ubyte)()
        status = self.x.XGetWindowProperty(
            self.dpy, window, self.atom("_NET_WM_NAME"), 0, 1024, False, self.atom("UTF8_STRING"),
            ctypes.byref(kind), ctypes.byref(fmt), ctypes.byref(n), ctypes.byref(after), ctypes.byref(data),
        )  # fmt: skip
        if status != 0 or not data:
            return ""
        text = ctypes.string_at(data, n.value).decode("utf-8", errors="replace")
        self.x.XFree(data)
        return text

    def viewable(self, window: int) -> bool:
        attrs = _XWindowAttributes()
        ok = self.x.XGetWindowAttributes(self.dpy, window, ctypes.byref(attrs))
        return bool(ok) and attrs.map_state == IS_VIEWABLE

    def windows(self) -> dict[int, str]:
        """Viewable top-level windows and their titles."""
        return {w: self.title(w) for w in self.top_level() if self.viewable(w)}

    def close(self, window: int) -> None:
        """Send WM_DELETE_WINDOW, as a window manager's close button does."""
        event = _XEvent()
        event.xclient.type = CLIENT_MESSAGE
        event.xclient.window = window
        event.xclient.message_type = self.atom("WM_PROTOCOLS")
        event.xclient.format = 32
        event.xclient.data[0] = self.atom("WM_DELETE_WINDOW")
        event.xclient.data[1] = 0  # CurrentTime
        self.x.XSendEvent(self.dpy, window, False, 0, ctypes.byref(event))
        self.x.XSync(self.dpy, False)

    def disconnect(self) -> None:
        self.x.XCloseDisplay(self.dpy)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from streamseg.datasets.demo_export import write_clip

    return write_clip(tmp_path_factory.mktemp("clip"), num_frames=12)["video"]


# ----------------------------------------------------------------------------- the real window


def test_window_opens_on_a_real_x_server_and_closes_cleanly(xvfb: str, clip: Path, tmp_path: Path) -> None:
    if missing := really_missing():
        pytest.skip(f"Qt's xcb plugin cannot load here ({missing[0]} is missing: make gui-deps)")
    env = gui_env(DISPLAY=xvfb)  # QT_QPA_PLATFORM unset: Qt picks xcb as on a desktop
    log = tmp_path / "gui.log"
    with log.open("w") as out:
        command = gui_command(tmp_path, str(clip), "--model", "demo", "--device", "cpu", "--paused")
        proc = subprocess.Popen(  # preexec_fn: the test starts no threads
            command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_no_core_dump,  # noqa: PLW1509
        )  # fmt: skip
    x = X11(xvfb)
    try:
        title = f"{clip.name} — streamseg"  # set once the clip is open (window_title)
        deadline = time.monotonic() + START_S
        window = None
        while window is None:
            assert proc.poll() is None, f"streamseg gui ended early ({proc.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no window {title!r}: {x.windows()}\n{log.read_text()}"
            window = next((w for w, t in x.windows().items() if t == title), None)
            time.sleep(0.2)
        x.close(window)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the window did not close on WM_DELETE_WINDOW:\n{log.read_text()}")
        assert code == 0, log.read_text()
        assert window not in x.top_level()
    finally:
        if proc.poll() is None:
            proc.kill()
        x.disconnect()
    text = log.read_text()
    assert "Traceback" not in text and "qt.qpa" not in text, text
    ini = (tmp_path / "gui.ini").read_text()
    assert "[window]" in ini and "geometry=" in ini  # closeEvent ran: the window saved its settings


# ----------------------------------------------------------------------------- no display


def test_no_display_is_one_line_and_exit_1_not_an_abort(tmp_path: Path) -> None:
    out = run_gui(tmp_path, gui_env())  # no DISPLAY, no WAYLAND_DISPLAY, QT_QPA_PLATFORM unset
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert out.stderr.splitlines() == [NO_DISPLAY], out.stderr
    assert not list(tmp_path.glob("core*"))


def test_a_display_nobody_serves_is_one_line_and_exit_1(tmp_path: Path) -> None:
    number = next(n for n in range(99, 1000) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())  # fmt: skip
    out = run_gui(tmp_path, gui_env(DISPLAY=f":{number}"))
    assert out.returncode == 1, (out.returncode, out.stderr)
    [line] = out.stderr.splitlines()
    if missing := really_missing():  # the libraries come first: the plugin would not even load
        assert line.startswith("streamseg: error: the window cannot start") and missing[0] in line, line
    else:
        assert line.startswith(f"streamseg: error: cannot connect to the X display ':{number}'"), line


def test_qt_qpa_platform_is_respected() -> None:
    dirs = [PLATFORMS]
    preflight.check_display({"QT_QPA_PLATFORM": "offscreen"}, dirs)  # no X libraries, no display needed
    preflight.check_display({"QT_QPA_PLATFORM": "minimal"}, dirs)
    preflight.check_display({"QT_QPA_PLATFORM": "wayland;offscreen"}, dirs)  # Qt falls back along the list
    with pytest.raises(
        ConfigError, match="^no Wayland display: WAYLAND_DISPLAY is not set and no compositor"
    ):
        preflight.check_display({"QT_QPA_PLATFORM": "wayland", "XDG_RUNTIME_DIR": "/nonexistent"}, dirs)
    with pytest.raises(ConfigError, match="^no display: set DISPLAY"):
        preflight.check_display({"QT_QPA_PLATFORM": "xcb"}, dirs)


def test_platform_order_is_qts() -> None:
    # Qt 6 createPlatformIntegration: QT_QPA_PLATFORM wins; else wayland (if a Wayland session) then xcb.
    assert preflight.platform_candidates({}) == ["xcb"]
    assert preflight.platform_candidates({"DISPLAY": ":0"}) == ["xcb"]
    assert preflight.platform_candidates({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}) == [
        "wayland",
        "xcb",
    ]
    assert preflight.platform_candidates({"XDG_SESSION_TYPE": "wayland"}) == ["wayland", "xcb"]
    assert preflight.platform_candidates({"QT_QPA_PLATFORM": "xcb:nograb;offscreen", "DISPLAY": ":0"}) == [
        "xcb", "offscreen"]  # fmt: skip


def test_a_wayland_socket_that_answers_passes(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / "wayland-7"))
        server.listen(1)
        env = {"QT_QPA_PLATFORM": "wayland", "WAYLAND_DISPLAY": "wayland-7", "XDG_RUNTIME_DIR": str(tmp_path)}
        if missing := preflight.missing_libraries(PLATFORMS / "libqwayland.so"):
            with pytest.raises(ConfigError, match=re.escape(missing[0])):
                preflight.check_display(env, [PLATFORMS])
        else:
            preflight.check_display(env, [PLATFORMS])


# ----------------------------------------------------------------------------- a missing library


def test_the_real_check_on_the_real_plugin_agrees_with_the_loader() -> None:
    missing = preflight.missing_libraries(XCB_PLUGIN)
    error = dlopen_error(XCB_PLUGIN)
    if error is None:
        assert missing == []
    else:  # dlopen names the first library it cannot find; ldd names them all
        assert any(error.startswith(f"{lib}: cannot open shared object file") for lib in missing), (
            error,
            missing,
        )


def _plugin_copy_without(tmp_path: Path, library: str) -> Path:
    """PyQt6's Qt6 layout in tmp_path: a copy of the real libqxcb.so, its Qt libraries but ``library``.

    The plugin's RUNPATH ($ORIGIN/../../lib) then finds every Qt library but that one, and
    nothing else on the system provides it: a real missing library for a real plugin.
    """
    qt = XCB_PLUGIN.parents[2]
    platforms = tmp_path / "Qt6" / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    shutil.copy2(XCB_PLUGIN, platforms / XCB_PLUGIN.name)
    (tmp_path / "Qt6" / "lib").mkdir()
    for lib in (qt / "lib").iterdir():
        if lib.name != library:
            (tmp_path / "Qt6" / "lib" / lib.name).symlink_to(lib)
    return platforms


def test_the_real_check_names_a_library_a_copy_of_the_real_plugin_cannot_find(tmp_path: Path) -> None:
    platforms = _plugin_copy_without(tmp_path, "libQt6XcbQpa.so.6")
    plugin = platforms / "libqxcb.so"
    assert dlopen_error(plugin, gui_env()).startswith("libQt6XcbQpa.so.6: cannot open shared object file")
    assert "libQt6XcbQpa.so.6" in preflight.missing_libraries(plugin)
    with pytest.raises(ConfigError) as info:
        preflight.check_display({"DISPLAY": ":0"}, [platforms])
    message = str(info.value)
    assert message.startswith("the window cannot start: Qt's xcb platform plugin") and "\n" not in message
    assert "libQt6XcbQpa.so.6" in message and str(plugin) in message and "reinstall Qt" in message
    # Qt tries its own folder after QT_QPA_PLATFORM_PLUGIN_PATH: a good copy there means no error.
    if not really_missing():
        preflight.check_display({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, [platforms, PLATFORMS])


def test_without_ldd_the_dlopen_fallback_names_the_first_missing_library(tmp_path: Path) -> None:
    platforms = _plugin_copy_without(tmp_path, "libQt6XcbQpa.so.6")
    env = {**os.environ, "PATH": str(tmp_path / "no-bin")}  # no ldd on PATH
    assert preflight.missing_libraries(platforms / "libqxcb.so", env) == ["libQt6XcbQpa.so.6"]


def test_ldd_output_of_a_fresh_debian_names_the_two_missing_libraries_and_packages(monkeypatch) -> None:
    missing = preflight.parse_ldd(LDD_FRESH_DEBIAN)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]  # each once; libxcb-cursor was there
    monkeypatch.setattr(preflight, "missing_libraries", lambda plugin, environ=None: missing)
    monkeypatch.setattr(preflight, "_x_connection_problem", lambda display: pytest.fail("checked X first"))
    with pytest.raises(ConfigError) as info:
        preflight.check_display({"DISPLAY": ":0"}, [PLATFORMS])
    message = str(info.value)
    assert "needs libxcb-icccm.so.4, libxcb-keysyms.so.1, which cannot be found" in message
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1" in message and "cursor" not in message


def test_gui_names_the_libraries_missing_on_this_machine(tmp_path: Path) -> None:
    """The whole command on a machine where the real plugin really lacks a library (a fresh Debian)."""
    missing = really_missing()
    if not missing:
        pytest.skip(
            "every library of Qt's xcb plugin is installed here (the copy tests above cover the check)"
        )
    out = run_gui(tmp_path, gui_env(DISPLAY=":0"))
    assert out.returncode == 1, (out.returncode, out.stderr)
    [line] = out.stderr.splitlines()
    assert line.startswith("streamseg: error: the window cannot start") and missing[0] in line, line


# ----------------------------------------------------------------------------- the package lists


def test_readme_makefile_and_ci_install_the_packages_the_window_needs() -> None:
    """Every library of the real xcb and offscreen plugins we know a package for is in the three lists."""
    names = set()
    for plugin in (XCB_PLUGIN, PLATFORMS / "libqoffscreen.so"):
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True)
        names |= set(re.findall(r"^\s*(\S+) =>", out.stdout, re.MULTILINE))
    needed = {preflight.DEBIAN_PACKAGES[n] for n in names if n in preflight.DEBIAN_PACKAGES}
    assert needed <= set(preflight.GUI_PACKAGES)
    assert {"libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0"} <= needed
    makefile = (REPO / "Makefile").read_text().replace("\\\n", " ")  # continuation lines joined
    debs = re.search(r"^GUI_DEBS\s*:?=(.*)$", makefile, re.MULTILINE)
    assert debs, "Makefile: no GUI_DEBS"
    assert set(debs.group(1).split()) == set(preflight.GUI_PACKAGES)
    assert re.search(r"^gui-deps:", makefile, re.MULTILINE)
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    window = readme[readme.index("## The desktop window") :]
    window = window[: window.index("\n## ", 3)]
    for package in (*preflight.GUI_PACKAGES, "xvfb"):
        assert re.search(rf"\s{re.escape(package)}(\s|\\)", ci), f".ci/run does not install {package}"
    for package in preflight.GUI_PACKAGES:
        assert re.search(rf"\s{re.escape(package)}\s", window), f"README's window section lacks {package}"
