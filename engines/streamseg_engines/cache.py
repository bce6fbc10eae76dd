"""The engine cache: one serialized TensorRT engine per (GPU, TensorRT, ONNX, precision, size).

An engine only runs on the GPU model and TensorRT version that built it, so the
cache key holds both, beside what went into the build: the ONNX file's sha256
(which covers the model, its weights and the graph version), the precision, the
network input size, the plugin's source (its kernel is compiled into the engine)
and, for INT8, the calibration data. Each entry is two files::

    <cache>/<model>-<H>x<W>-<precision>-<key16>.engine   the serialized engine
    <cache>/<model>-<H>x<W>-<precision>-<key16>.json     its key and build facts

written atomically (temporary file, then rename), so a crashed build never leaves
a half engine under a valid name. Nothing here imports TensorRT.

The cache folder is ``$STREAMSEG_ENGINES`` if set, else ``$XDG_CACHE_HOME/streamseg/engines``
(``~/.cache/streamseg/engines``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from streamseg.errors import ConfigError, EngineError

__all__ = [
    "CACHE_ENV",
    "EngineCache",
    "EngineKey",
    "EngineRecord",
    "PRECISIONS",
    "RECIPE_VERSION",
    "default_cache_dir",
    "format_size",
    "parse_size",
]

#: Environment variable naming the engine cache folder.
CACHE_ENV = "STREAMSEG_ENGINES"
#: Precisions ``build-engine`` knows.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
#: Version of our build recipe (precision handling, ONNX preparation, builder settings).
#: Bump it when a change makes earlier engines stale; it is part of every key.
RECIPE_VERSION = 1
_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (e.g. ``"800x1344"``) into ``(H, W)`` pixels.

    Raises:
        ConfigError: not ``HxW``, or a side that is not a positive multiple of 32
            (the FPN's coarsest stride).
    """
    match = _SIZE_RE.match(str(text))
    if match is None:
        raise ConfigError(f"size must be HxW in pixels, e.g. 800x1344; got {text!r}")
    h, w = int(match.group(1)), int(match.group(2))
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ConfigError(f"size sides must be positive multiples of 32 pixels, got {h}x{w}")
    return h, w


def format_size(size: tuple[int, int]) -> str:
    """``(800, 1344)`` -> ``"800x1344"``."""
    return f"{int(size[0])}x{int(size[1])}"


def default_cache_dir() -> Path:
    """``$STREAMSEG_ENGINES``, else ``$XDG_CACHE_HOME/streamseg/engines`` (``~/.cache/...``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "streamseg" / "engines"


def _slug(text: str) -> str:
    """File-name-safe form of a name: letters, digits, '.', '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on. Two builds with equal keys are interchangeable.

    Attributes:
        model: registry name of the model (for the file name and messages).
        size: (H, W) network input size, pixels.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        onnx_sha256: sha256 of the trt-flavour ONNX the engine is built from.
        gpu_name: ``torch.cuda.get_device_name()``, e.g. ``"NVIDIA H100 80GB HBM3"``.
        compute_capability: (major, minor), e.g. (9, 0).
        tensorrt_version: ``tensorrt.__version__``, e.g. ``"10.13.0.35"``.
        plugin_sha256: sha256 of the plugin's sources (the kernel compiled into the engine).
        calib_sha256: for INT8, sha256 of the calibration data; "" otherwise.
        recipe: :data:`RECIPE_VERSION` at build time.
    """

    model: str
    size: tuple[int, int]
    precision: str
    onnx_sha256: str
    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    plugin_sha256: str = ""
    calib_sha256: str = ""
    recipe: int = RECIPE_VERSION

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        cc = self.compute_capability
        object.__setattr__(self, "compute_capability", (int(cc[0]), int(cc[1])))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        d["compute_capability"] = list(self.compute_capability)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineKey:
        """Inverse of :meth:`to_dict`.

        Raises:
            EngineError: missing or malformed fields.
        """
        try:
            fields = {f.name for f in dataclasses.fields(cls)}
            values = {k: v for k, v in data.items() if k in fields}
            values["size"] = tuple(values["size"])
            values["compute_capability"] = tuple(values["compute_capability"])
            return cls(**values)
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise EngineError(f"malformed engine key {dict(data)!r}: {exc}") from exc

    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON of the key."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def stem(self) -> str:
        """File stem: ``<model>-<H>x<W>-<precision>-<first 16 hex of the digest>``."""
        return f"{_slug(self.model)}-{format_size(self.size)}-{self.precision}-{self.digest()[:16]}"

    def runtime_mismatch(self, *, gpu_name: str, compute_capability: tuple[int, int], tensorrt_version: str) -> str | None:
        """Why an engine with this key cannot run on the given GPU and TensorRT, or None.

        An engine is specific to the GPU model (its compute capability and SM count pick
        the kernels) and to the exact TensorRT version that serialized it.
        """
        cc = (int(compute_capability[0]), int(compute_capability[1]))
        problems = []
        if self.gpu_name != gpu_name or self.compute_capability != cc:
            problems.append(
                f"it was built for {self.gpu_name} (compute capability {self.compute_capability[0]}."
                f"{self.compute_capability[1]}), this GPU is {gpu_name} ({cc[0]}.{cc[1]})"
            )
        if self.tensorrt_version != tensorrt_version:
            problems.append(
                f"it was built with TensorRT {self.tensorrt_version}, this is TensorRT {tensorrt_version}"
            )
        return "; ".join(problems) or None


@dataclasses.dataclass(frozen=True)
class EngineRecord:
    """A cache entry.

    Attributes:
        key: its key.
        path: the ``.engine`` file.
        meta_path: the ``.json`` file.
        built: True when this call built it, False when it was reused.
        info: extra facts recorded at build time (build seconds, ONNX path, ...).
    """

    key: EngineKey
    path: Path
    meta_path: Path
    built: bool = False
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class EngineCache:
    """A folder of engines keyed by :class:`EngineKey`.

    Args:
        root: the cache folder (default :func:`default_cache_dir`); created on first write.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"EngineCache({str(self.root)!r})"

    def paths(self, key: EngineKey) -> tuple[Path, Path]:
        """``(engine_path, meta_path)`` of a key (whether or not they exist)."""
        stem = key.stem()
        return self.root / f"{stem}.engine", self.root / f"{stem}.json"

    def timing_cache_path(self, *, gpu_name: str, compute_capability: tuple[int, int], tensorrt_version: str) -> Path:
        """The builder timing cache shared by every build on this GPU and TensorRT version."""
        cc = f"{int(compute_capability[0])}{int(compute_capability[1])}"
        return self.root / f"timing-{_slug(gpu_name)}-sm{cc}-trt{_slug(tensorrt_version)}.cache"

    def get(self, key: EngineKey) -> EngineRecord | None:
        """The valid entry for ``key``, or None.

        An entry is valid when both files exist, the engine is not empty and the
        metadata records exactly this key (a stale or foreign file under the same
        name is ignored and will be rebuilt).
        """
        engine, meta = self.paths(key)
        if not engine.is_file() or not meta.is_file() or engine.stat().st_size == 0:
            return None
        try:
            data = json.loads(meta.read_text())
            stored = EngineKey.from_dict(data["key"])
        except (OSError, ValueError, KeyError, TypeError, EngineError):
            return None
        if stored != key:
            return None
        return EngineRecord(key=key, path=engine, meta_path=meta, built=False, info=data.get("info", {}))

    def put(self, key: EngineKey, engine_bytes: bytes, info: Mapping[str, Any] | None = None) -> EngineRecord:
        """Store a serialized engine; the metadata is written last, so it marks a complete entry.

        Raises:
            EngineError: empty engine, or the folder is not writable.
        """
        if not engine_bytes:
            raise EngineError(f"refusing to cache an empty engine for {key.stem()}")
        engine, meta = self.paths(key)
        info = dict(info or {})
        try:
            _atomic_write(engine, bytes(engine_bytes))
            document = {"key": key.to_dict(), "info": info, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            _atomic_write(meta, json.dumps(document, indent=2, sort_keys=True).encode())
        except OSError as exc:
            raise EngineError(f"cannot write the engine cache {self.root}: {exc} (set ${CACHE_ENV})") from exc
        return EngineRecord(key=key, path=engine, meta_path=meta, built=True, info=info)

    def get_or_build(
        self,
        key: EngineKey,
        build: Callable[[], tuple[bytes, Mapping[str, Any]]],
        *,
        rebuild: bool = False,
    ) -> EngineRecord:
        """Return the cached engine for ``key``, building and storing it if absent.

        Args:
            key: the engine's key.
            build: ``build() -> (engine_bytes, info)``, called only on a miss.
            rebuild: build even if a valid entry exists (and replace it).

        Returns:
            The record; ``built`` tells whether ``build`` ran.

        Raises:
            EngineError: from ``build`` or when writing.
        """
        if not rebuild:
            found = self.get(key)
            if found is not None:
                return found
        engine_bytes, info = build()
        return self.put(key, engine_bytes, info)

    def entries(self) -> list[EngineRecord]:
        """Every valid entry in the folder, sorted by file name."""
        out = []
        if not self.root.is_dir():
            return out
        for meta in sorted(self.root.glob("*.json")):
            try:
                key = EngineKey.from_dict(json.loads(meta.read_text())["key"])
            except (OSError, ValueError, KeyError, TypeError, EngineError):
                continue
            record = self.get(key)
            if record is not None:
                out.append(record)
        return out

    @staticmethod
    def read_key(engine_path: str | os.PathLike[str]) -> EngineKey:
        """The key recorded beside an engine file (``X.engine`` -> ``X.json``).

        Raises:
            EngineError: no or unreadable metadata beside the engine.
        """
        meta = Path(engine_path).with_suffix(".json")
        try:
            return EngineKey.from_dict(json.loads(meta.read_text())["key"])
        except FileNotFoundError:
            raise EngineError(
                f"{engine_path} has no {meta.name} beside it: cannot tell which GPU and TensorRT built it; "
                "rebuild it with `streamseg build-engine`"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"cannot read the engine metadata {meta}: {exc}") from exc
