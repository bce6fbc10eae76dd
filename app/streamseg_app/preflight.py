"""Can Qt open a window here? Checked before the QApplication exists, because Qt cannot fail softly.

When the platform plugin cannot start (no display, a library it links against is missing,
an X server that refuses the connection) Qt prints a hint and calls ``abort()``: exit 134,
maybe a core dump, and for a missing library the hint is often wrong (Qt 6.5+ names
libxcb-cursor0 whatever xcb library is missing). :func:`check_display` asks the same
questions first and raises :class:`~streamseg.errors.ConfigError`, which ``streamseg``
turns into one line and exit 1.

The platform Qt picks (Qt 6 ``QGuiApplicationPrivate::createPlatformIntegration``):
``QT_QPA_PLATFORM`` if set, a ``;``-separated list tried in order; otherwise
``wayland`` first when ``WAYLAND_DISPLAY`` is set or ``XDG_SESSION_TYPE`` is
``wayland``, then ``xcb``. Qt uses the first one that starts, so the check passes when
any candidate can.

Missing libraries are found by running ``ldd`` on the plugin file Qt would load: ldd is
the dynamic loader itself in trace mode (``LD_TRACE_LOADED_OBJECTS``), so it resolves
names exactly as the real load will (the plugin's RUNPATH into PyQt6's Qt6/lib,
``LD_LIBRARY_PATH``, ``/etc/ld.so.cache``, the system directories); it walks the whole
dependency tree and names *every* missing library in one go; and it loads nothing into
this process. Loading each library by hand with ctypes would need our own copy of the
plugin's dependency list and of the loader's search rules; ``dlopen`` of the plugin names
only the first missing library, so it is kept as the fallback where ``ldd`` is absent
(a ``dlopen`` in a child process, so a half-loaded plugin never stays in this one).

The check errs on the side of starting: anything it cannot decide (an unknown platform
name, a plugin file it cannot find, an ``ldd`` it cannot run) is left to Qt.
"""

from __future__ import annotations

import ctypes
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from streamseg.errors import ConfigError

__all__ = [
    "DEBIAN_PACKAGES",
    "GUI_PACKAGES",
    "check_display",
    "display_problem",
    "missing_libraries",
    "parse_ldd",
    "platform_candidates",
    "plugin_dirs",
]

#: Platforms that need no display server (and no X libraries).
HEADLESS = frozenset({"offscreen", "minimal"})

#: Shared libraries Qt's platform plugins (xcb, wayland, offscreen) and QtGui link
#: against, with the Debian / Ubuntu package that ships each (checked with ``dpkg -S``
#: on Debian 12). The README's window section, ``make gui-deps`` and ``.ci/run`` install
#: these packages; libraries that come with glibc or libstdc++ are left out.
DEBIAN_PACKAGES: dict[str, str] = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
}

#: What ``make gui-deps`` and ``.ci/run`` install and the README lists: the packages of the
#: libraries above that the xcb and offscreen plugins load (the wayland ones are optional:
#: in a Wayland session Qt falls back to xcb through XWayland).
GUI_PACKAGES: tuple[str, ...] = tuple(
    sorted({pkg for lib, pkg in DEBIAN_PACKAGES.items() if not lib.startswith("libwayland")})
)

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$", re.MULTILINE)
_DLOPEN_MISSING = re.compile(r"([^\s:]+): cannot open shared object file")

_NO_DISPLAY = "no display: set DISPLAY, or use QT_QPA_PLATFORM=offscreen"

# xcb_connection_has_error codes (xcb.h).
_XCB_ERRORS = {
    1: "the connection failed (no X server there, or it refused this user: check DISPLAY and XAUTHORITY)",
    2: "an X extension is not supported",
    3: "out of memory",
    4: "request length exceeded",
    5: "the display name cannot be parsed",
    6: "the display has no such screen",
}


def platform_candidates(environ: Mapping[str, str]) -> list[str]:
    """The platform plugins Qt will try, in order (names without ``:options``)."""
    explicit = environ.get("QT_QPA_PLATFORM", "")
    if explicit:
        names = explicit.split(";")
    else:
        names = []
        if environ.get("WAYLAND_DISPLAY") or environ.get("XDG_SESSION_TYPE") == "wayland":
            names.append("wayland")
        names.append("xcb")
    return [n.split(":", 1)[0].strip() for n in names if n.split(":", 1)[0].strip()]


def plugin_dirs(environ: Mapping[str, str], installed: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders Qt looks in for platform plugins, in Qt's order.

    ``QT_QPA_PLATFORM_PLUGIN_PATH``, then ``<dir>/platforms`` for each ``QT_PLUGIN_PATH``
    entry, then ``platforms`` in Qt's own plugin folder (``installed``; default: PyQt6's,
    from ``QLibraryInfo``, which needs only QtCore).
    """
    dirs: list[Path] = []
    if environ.get("QT_QPA_PLATFORM_PLUGIN_PATH"):
        dirs.append(Path(environ["QT_QPA_PLATFORM_PLUGIN_PATH"]))
    dirs += [Path(p) / "platforms" for p in environ.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
    if installed is None:
        from PyQt6.QtCore import QLibraryInfo

        installed = QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)
    dirs.append(Path(installed) / "platforms")
    return dirs


def _plugin_files(name: str, dirs: Sequence[Path]) -> list[Path]:
    # Qt 6's plugin files: libq<name>.so; the wayland variants (wayland-egl, ...) live in libqwayland.so.
    stem = "wayland" if name.startswith("wayland") else name
    return [d / f"libq{stem}.so" for d in dirs if (d / f"libq{stem}.so").is_file()]


def parse_ldd(text: str) -> list[str]:
    """The libraries ``ldd`` output says are ``not found``, each once, in the order given."""
    return list(dict.fromkeys(_NOT_FOUND.findall(text)))


def missing_libraries(plugin: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Shared libraries ``plugin`` needs (directly or through another library) that cannot be found.

    Args:
        plugin: a shared library, e.g. Qt6/plugins/platforms/libqxcb.so.
        environ: the environment the load would happen in (``LD_LIBRARY_PATH`` counts);
            default ``os.environ``.

    Returns:
        Library names (sonames) as the loader looks for them, e.g. ``["libxcb-icccm.so.4"]``;
        empty when everything is found, or when neither ldd nor dlopen can tell.
    """
    env = {**(os.environ if environ is None else environ), "LC_ALL": "C"}
    try:
        out = subprocess.run(
            ["ldd", os.fspath(plugin)], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        if out.returncode == 0:
            return parse_ldd(out.stdout)
    except (OSError, subprocess.SubprocessError):
        pass
    # No usable ldd: dlopen it in a child process; that names the first missing library only.
    code = "import ctypes, os, sys; ctypes.CDLL(sys.argv[1], mode=os.RTLD_LAZY)"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, os.fspath(plugin)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return list(dict.fromkeys(_DLOPEN_MISSING.findall(out.stderr))) if out.returncode else []


def _missing_message(name: str, plugin: Path, missing: Sequence[str]) -> str:
    packages = list(dict.fromkeys(DEBIAN_PACKAGES[m] for m in missing if m in DEBIAN_PACKAGES))
    them = "it" if len(missing) == 1 else "them"
    install = (
        f"install {them} (Debian/Ubuntu: sudo apt-get install {' '.join(packages)}, or `make gui-deps`)"
        if packages
        else "reinstall Qt (pip install --force-reinstall PyQt6-Qt6)"
        if all(m.startswith("libQt6") for m in missing)
        else f"install the packages that provide {them}"
    )
    return (
        f"the window cannot start: Qt's {name} platform plugin ({plugin}) needs {', '.join(missing)}, "
        f"which cannot be found; {install}, or use QT_QPA_PLATFORM=offscreen"
    )


def _x_connection_problem(display: str) -> str | None:
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return None  # the library check names it
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    try:
        code = xcb.xcb_connection_has_error(conn)
    finally:
        xcb.xcb_disconnect(conn)
    if not code:
        return None
    why = _XCB_ERRORS.get(code, f"xcb error {code}")
    return f"cannot connect to the X display {display!r}: {why}; or use QT_QPA_PLATFORM=offscreen"


def _wayland_problem(environ: Mapping[str, str]) -> str | None:
    if environ.get("WAYLAND_SOCKET"):
        return None  # a connected socket handed down by the compositor
    name = environ.get("WAYLAND_DISPLAY") or "wayland-0"  # libwayland-client's default
    runtime = environ.get("XDG_RUNTIME_DIR")
    if not os.path.isabs(name) and not runtime:
        return (
            "no Wayland display: XDG_RUNTIME_DIR is not set; set WAYLAND_DISPLAY, "
            "or use QT_QPA_PLATFORM=offscreen"
        )
    path = Path(name) if os.path.isabs(name) else Path(runtime or "") / name
    try:
        if not stat.S_ISSOCK(path.stat().st_mode):
            raise OSError("not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(os.fspath(path))
    except OSError as exc:
        unset = "" if environ.get("WAYLAND_DISPLAY") else "WAYLAND_DISPLAY is not set and "
        return (
            f"no Wayland display: {unset}no compositor answers at {path} ({exc.strerror or exc}); "
            "set WAYLAND_DISPLAY, or use QT_QPA_PLATFORM=offscreen or xcb"
        )
    return None


def display_problem(name: str, environ: Mapping[str, str], dirs: Sequence[Path]) -> str | None:
    """Why platform plugin ``name`` cannot start here, in one sentence; None if it can or we cannot tell."""
    if name == "xcb" and not environ.get("DISPLAY"):
        return _NO_DISPLAY
    if name.startswith("wayland") and (problem := _wayland_problem(environ)):
        return problem
    plugins = _plugin_files(name, dirs)
    if name not in HEADLESS and name != "xcb" and not name.startswith("wayland") and not plugins:
        return None  # eglfs, vnc, ... or a name we do not know: Qt says what it thinks
    if not plugins:
        return f"Qt's {name} platform plugin is not installed (looked in {', '.join(map(str, dirs))})"
    # Qt tries QT_QPA_PLATFORM_PLUGIN_PATH, then its plugin folders: fine if one of them loads.
    unloadable: list[tuple[Path, list[str]]] = []
    for plugin in plugins:
        missing = missing_libraries(plugin, environ)
        if not missing:
            return _x_connection_problem(environ["DISPLAY"]) if name == "xcb" else None
        unloadable.append((plugin, missing))
    return _missing_message(name, *unloadable[0])


def check_display(environ: Mapping[str, str] | None = None, dirs: Sequence[Path] | None = None) -> None:
    """Raise ConfigError unless one of the platforms Qt will try can start (see the module's docstring).

    Args:
        environ: the environment Qt will read; default ``os.environ``.
        dirs: platform plugin folders, in Qt's order; default :func:`plugin_dirs`.

    Raises:
        ConfigError: no display, a library the platform plugin needs is missing, or the X
            server cannot be reached; the message is one line and names the fix.
    """
    environ = os.environ if environ is None else environ
    dirs = plugin_dirs(environ) if dirs is None else dirs
    problems: list[tuple[str, str]] = []
    for name in platform_candidates(environ):
        problem = display_problem(name, environ, dirs)
        if problem is None:
            return
        problems.append((name, problem))
    if len(problems) == 1:
        raise ConfigError(problems[0][1])
    if problems:
        raise ConfigError("; ".join(f"{name}: {problem}" for name, problem in problems))
