"""Finding, verifying, downloading and loading model weights.

Lookup order of :func:`resolve_weights` (the first hit wins):

1. an explicit ``weights`` argument: a file path, a directory holding the registry
   file name, or the literal ``"random"`` (seeded random weights);
2. ``$STREAMSEG_WEIGHTS/<registry file name>`` (a directory of checkpoints);
3. torch's hub cache, ``<torch.hub.get_dir()>/checkpoints/<registry file name>``
   (``$TORCH_HOME/hub/checkpoints``, where torchvision itself caches them);
4. a download of the registry URL into that hub cache, with a progress bar,
   verified before it is moved into place.

Downloads are skipped (and a missing file is an error that says where to put it)
when ``allow_download=False`` or ``$STREAMSEG_OFFLINE=1``. A network failure is
reported within :data:`DOWNLOAD_TIMEOUT_S` seconds, never hangs.

Any file named like the registry file (found in 2-4, or passed explicitly with that
base name) must match the registry's sha256 prefix (and full sha256 when known).
A file with another name is the user's own checkpoint and is not hashed, but it
must still be a state dict of the right architecture: :func:`load_model` checks
every key and shape and never falls back to random weights silently.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import torch
from tqdm import tqdm

from streamseg.errors import WeightsError
from streamseg.models.registry import ModelSpec

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "ENV_OFFLINE",
    "ENV_WEIGHTS_DIR",
    "RANDOM",
    "file_sha256",
    "find_weights",
    "hub_checkpoints_dir",
    "where_to_put",
    "load_model",
    "read_state_dict",
    "resolve_weights",
]

logger = logging.getLogger("streamseg")

#: The ``weights`` value that asks for seeded random weights.
RANDOM = "random"
#: Socket timeout of a weights download, seconds (connect and each read).
DOWNLOAD_TIMEOUT_S = 15.0
#: Environment variable naming a directory of checkpoints, by registry file name.
ENV_WEIGHTS_DIR = "STREAMSEG_WEIGHTS"
#: Environment variable that turns downloads off when set to 1 / true / yes.
ENV_OFFLINE = "STREAMSEG_OFFLINE"

_CHUNK = 1 << 20
_EXAMPLES = 3
# (resolved path, size, mtime_ns) -> sha256, so a file is hashed once per process.
_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def hub_checkpoints_dir() -> Path:
    """torch's hub cache for checkpoints: ``Path(torch.hub.get_dir()) / "checkpoints"``.

    This is where ``torchvision`` caches the same files (honours ``$TORCH_HOME``).
    """
    return Path(torch.hub.get_dir()) / "checkpoints"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Full sha256 of a file, as 64 lowercase hex digits (read in 1 MiB chunks).

    Results are cached per process by (path, size, modification time).
    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    digest = _SHA256_CACHE.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
        _SHA256_CACHE[key] = digest
    return digest


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_dir() -> Path | None:
    value = os.environ.get(ENV_WEIGHTS_DIR, "").strip()
    return Path(value).expanduser() if value else None


def _hash_mismatch(spec: ModelSpec, path: Path, digest: str) -> str | None:
    """The error message if ``digest`` does not match the spec, else None."""
    if digest.startswith(spec.sha256_prefix) and (spec.sha256 is None or digest == spec.sha256):
        return None
    expected, got = (spec.sha256, digest) if spec.sha256 else (spec.sha256_prefix + "...", digest[:8] + "...")
    return (
        f"{path}: sha256 mismatch for {spec.name}: expected {expected}, got {got} "
        f"(corrupt or wrong file; delete it and download again from {spec.url})"
    )


def _verify(spec: ModelSpec, path: Path) -> Path:
    """Check a file named like the registry file against the registry hash."""
    message = _hash_mismatch(spec, path, file_sha256(path))
    if message is not None:
        raise WeightsError(message)
    return path


def where_to_put(spec: ModelSpec) -> str:
    """Where a missing registry file goes, in words: ``"put it in the torch hub cache (...) or ..."``."""
    env_dir = _env_dir()
    hub = hub_checkpoints_dir()
    if env_dir is not None:
        return f"put it in ${ENV_WEIGHTS_DIR} ({env_dir}) or in the torch hub cache ({hub})"
    return f"put it in the torch hub cache ({hub}) or in a directory named by ${ENV_WEIGHTS_DIR}"


def _not_found(spec: ModelSpec, why: str) -> WeightsError:
    return WeightsError(
        f"weights for {spec.name} not found and {why}: download {spec.url} and "
        f"{where_to_put(spec)} as {spec.filename} (or use --weights PATH, or --weights random "
        f"for a seeded random model)"
    )


def _download(spec: ModelSpec, dst: Path, *, progress: bool) -> Path:
    """Download ``spec.url`` to ``dst`` via a temporary file, verifying the sha256.

    Follows ``torch.hub.download_url_to_file`` (temporary ``.partial`` file, hash
    checked before the move) with a socket timeout so that no network fails fast.
    """
    tmp = dst.with_name(f"{dst.name}.{uuid.uuid4().hex}.partial")
    sha = hashlib.sha256()
    try:
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            request = Request(spec.url, headers={"User-Agent": "streamseg"})
            with urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as f:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                with tqdm(
                    total=total,
                    disable=not progress,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=spec.filename,
                ) as bar:
                    while chunk := response.read(_CHUNK):
                        f.write(chunk)
                        sha.update(chunk)
                        bar.update(len(chunk))
        except (HTTPError, URLError, TimeoutError, OSError) as exc:
            if isinstance(exc, HTTPError):
                reason: object = f"HTTP {exc.code} {exc.reason}"
            else:
                reason = getattr(exc, "reason", None) or exc
            raise _not_found(spec, f"the download from {spec.url} failed ({reason})") from exc
        message = _hash_mismatch(spec, dst, sha.hexdigest())
        if message is not None:
            raise WeightsError(f"download from {spec.url} failed verification: {message}")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)  # a failed or interrupted download leaves nothing behind
    return dst


#: :func:`find_weights`'s names of the places a registry file is looked up.
FOUND_ENV, FOUND_PACKAGE, FOUND_HUB = f"${ENV_WEIGHTS_DIR}", "bundled in the package", "torch's hub cache"


def find_weights(spec: ModelSpec) -> tuple[Path | None, str]:
    """Where the registry file of ``spec`` is found, in :func:`resolve_weights`'s order (steps 2-3),
    without hashing, loading or downloading anything (``streamseg models``).

    Returns:
        ``(path, where)``: the file and the place it was found (:data:`FOUND_ENV`,
        :data:`FOUND_PACKAGE` or :data:`FOUND_HUB`); ``(None, FOUND_PACKAGE)`` when bundled
        weights are missing from the install; ``(None, "")`` when no file is there yet.
    """
    env_dir = _env_dir()
    if env_dir is not None and (env_dir / spec.filename).is_file():
        return env_dir / spec.filename, FOUND_ENV
    if spec.package_file is not None:  # shipped inside the package (the demo model): never downloaded
        packaged = Path(__file__).resolve().parent.parent / spec.package_file
        return (packaged if packaged.is_file() else None), FOUND_PACKAGE
    cached = hub_checkpoints_dir() / spec.filename
    return (cached, FOUND_HUB) if cached.is_file() else (None, "")


def resolve_weights(
    spec: ModelSpec,
    weights: str | os.PathLike[str] | None,
    *,
    allow_download: bool = True,
    progress: bool = True,
) -> Path | None:
    """Find (or download) the weights file for a model.

    Args:
        spec: the registry entry.
        weights: an explicit file (or a directory holding ``spec.filename``), the
            literal ``"random"`` for seeded random weights, or None to look the
            registry file up in ``$STREAMSEG_WEIGHTS``, the hub cache, then download.
        allow_download: False never touches the network (as ``$STREAMSEG_OFFLINE=1``).
        progress: show a tqdm progress bar on stderr while downloading.

    Returns:
        The path of a verified file, or None for random weights.

    Raises:
        WeightsError: an explicit path that does not exist; a registry-named file
            whose sha256 does not match; or no file and no download (offline,
            network failure), with a one-line message naming the file, its URL
            and the directory to put it in.
    """
    if weights is not None:
        if str(weights).strip().lower() == RANDOM:
            return None
        path = Path(weights).expanduser()
        if path.is_dir():
            path = path / spec.filename
        if not path.is_file():
            raise WeightsError(f"{path}: no such weights file for {spec.name}")
        return _verify(spec, path) if path.name == spec.filename else path

    found, where = find_weights(spec)
    if found is not None:
        return _verify(spec, found)
    if where == FOUND_PACKAGE:
        packaged = Path(__file__).resolve().parent.parent / str(spec.package_file)
        raise WeightsError(
            f"{packaged}: the bundled weights of {spec.name} are missing (reinstall streamseg, "
            f"or use --weights PATH)"
        )
    cached = hub_checkpoints_dir() / spec.filename
    if _offline():
        raise _not_found(spec, f"downloads are off (${ENV_OFFLINE}=1)")
    if not allow_download:
        raise _not_found(spec, "downloads are off")
    logger.info("downloading %s weights from %s to %s", spec.name, spec.url, cached)
    return _download(spec, cached, progress=progress)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unpickler_detail(exc: BaseException) -> str:
    """The one informative line of torch's long ``weights_only`` error message."""
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", str(exc), re.DOTALL)
    if match is None:
        return _first_line(exc)
    return match.group(1).strip().splitlines()[0].split(". Please")[0]


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.pth`` file, safely (``torch.load(weights_only=True)``).

    Accepts a raw state dict or a training checkpoint holding one under ``"model"`` or
    ``"state_dict"``; strips a ``"module."`` prefix (DataParallel) from every key.

    Args:
        path: the file.

    Returns:
        ``{name: tensor}`` on the CPU.

    Raises:
        WeightsError: unreadable, truncated or corrupt file; a pickle that is not
            plain tensors (refused by ``weights_only=True``); not a state dict.
    """
    p = Path(path)
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(exc)
        if detail.startswith("Unsupported global"):
            raise WeightsError(
                f"{p}: not a plain state dict (torch.load(weights_only=True) refused it: {detail}); "
                f"save model.state_dict() instead of the model object"
            ) from exc
        raise WeightsError(f"{p}: cannot read weights (truncated or corrupt file: {detail})") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError) as exc:
        raise WeightsError(
            f"{p}: cannot read weights (truncated or corrupt file: {_first_line(exc)})"
        ) from exc
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise WeightsError(
            f"{p}: not a state dict (expected a dict of tensors, or a checkpoint with a "
            f"'model' or 'state_dict' entry; got {type(obj).__name__})"
        )
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (", ..." if len(items) > _EXAMPLES else "")


def state_dict_problems(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading strictly into ``model``, for an error message.

    ``num_batches_tracked`` buffers are ignored either way: ``FrozenBatchNorm2d`` drops
    them and ``BatchNorm2d`` fills them in when loading (torch's own behaviour).

    Returns:
        Up to three strings ("N missing keys (a, b, c, ...)", "N unexpected keys (...)",
        "N shape mismatches (key: file (..) vs model (..), ...)"); empty when it loads.
    """
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = [
        f"{k}: file {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(given))
        if tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    kinds = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
    return [f"{len(items)} {what} ({_examples(items)})" for what, items in kinds if items]


def _check_state_dict(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path, spec: ModelSpec
) -> None:
    """Strict key and shape check (:func:`state_dict_problems`) as a WeightsError naming the problems."""
    problems = state_dict_problems(model, state)
    if problems:
        raise WeightsError(f"{path} is not a {spec.name} state dict: {', '.join(problems)}")


def load_model(
    spec: ModelSpec,
    weights: str | os.PathLike[str] | None,
    *,
    device: str = "cpu",
    seed: int = 0,
    box_score_thresh: float = 0.05,
    min_size: int = 800,
    max_size: int = 1333,
    detections_per_img: int = 100,
    allow_download: bool = True,
    progress: bool = True,
) -> tuple[torch.nn.Module, bool]:
    """Build a registry model and load its weights.

    Args:
        spec: the registry entry.
        weights: as :func:`resolve_weights` (a path, ``"random"``, or None to look up).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; the caller checks it is available.
        seed: ``torch.manual_seed`` for random weights (the caller's RNG state is
            left untouched: the seed applies inside ``torch.random.fork_rng``).
        box_score_thresh: torchvision's ``box_score_thresh`` (detections need a class
            score ``> box_score_thresh``, in ``RoIHeads.postprocess_detections``).
        min_size: shorter image side after resizing, pixels (``GeneralizedRCNNTransform``).
        max_size: longest image side after resizing, pixels.
        detections_per_img: torchvision's ``box_detections_per_img``.
        allow_download: see :func:`resolve_weights`.
        progress: see :func:`resolve_weights`.

    Returns:
        ``(model, random_weights)``: the torchvision model in eval mode on ``device``,
        and whether its weights are seeded random. Random weights log a WARNING on
        the ``streamseg`` logger every time.

    Raises:
        WeightsError: see :func:`resolve_weights` and :func:`read_state_dict`; a state
            dict of another architecture (missing / unexpected keys, shape mismatches).
    """
    path = resolve_weights(spec, weights, allow_download=allow_download, progress=progress)
    kwargs = {
        "min_size": int(min_size),
        "max_size": int(max_size),
        "box_score_thresh": float(box_score_thresh),
        "box_detections_per_img": int(detections_per_img),
    }
    if path is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = spec.build(**kwargs)
        logger.warning(
            "model %s is using seeded RANDOM weights (seed %d): detections are meaningless", spec.name, seed
        )
    else:
        state = read_state_dict(path)
        model = spec.build(**kwargs)
        _check_state_dict(model, state, path, spec)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # pragma: no cover - _check_state_dict catches these first
            first = str(exc).strip().splitlines()[0]
            raise WeightsError(f"{path} is not a {spec.name} state dict: {first}") from exc
    model.eval()
    model.to(device)
    return model, path is None
