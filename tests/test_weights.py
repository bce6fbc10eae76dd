"""Model registry and weights: lookup order, hashes, downloads, state-dict checks, random weights."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from streamseg.errors import ConfigError, WeightsError
from streamseg.models import weights as weights_mod
from streamseg.models.registry import DEFAULT_MODEL, MODELS, ModelSpec, get_model_spec
from streamseg.models.weights import file_sha256, load_model, read_state_dict, resolve_weights

MASK = "maskrcnn_resnet50_fpn"
KEYPOINT = "keypointrcnn_resnet50_fpn"


# -- helpers and fixtures -------------------------------------------------------------


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point $STREAMSEG_WEIGHTS and $TORCH_HOME at empty temporary directories."""
    env_dir = tmp_path / "env_weights"
    torch_home = tmp_path / "torch_home"
    env_dir.mkdir()
    monkeypatch.setenv("STREAMSEG_WEIGHTS", str(env_dir))
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.delenv("STREAMSEG_OFFLINE", raising=False)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    assert hub == torch_home / "hub" / "checkpoints"
    return {"env": env_dir, "hub": hub, "tmp": tmp_path}


def tiny_spec(data: bytes, *, url: str | None = None, builder=None, sha256: str | None = None) -> ModelSpec:
    """A registry-like spec whose file is ``data`` (its name carries the real sha256 prefix)."""
    prefix = hashlib.sha256(data).hexdigest()[:8]
    filename = f"tiny_coco-{prefix}.pth"
    return dataclasses.replace(
        get_model_spec(MASK),
        name="tiny",
        filename=filename,
        sha256_prefix=prefix,
        sha256=sha256,
        url=url or f"https://download.pytorch.org/models/{filename}",
        builder=builder or get_model_spec(MASK).builder,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A local HTTP server serving ``files[path]``; yields (base URL, files)."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


class Tiny(torch.nn.Module):
    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)


@pytest.fixture(scope="session")
def mask_state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seeded maskrcnn_resnet50_fpn state dict per session (about 170 MB)."""
    path = tmp_path_factory.mktemp("sd") / "mask_seed1.pth"
    torch.manual_seed(1)
    torch.save(get_model_spec(MASK).build().state_dict(), path)
    return path


# -- registry -------------------------------------------------------------------------


def test_registry_entries() -> None:
    assert DEFAULT_MODEL == MASK and DEFAULT_MODEL in MODELS
    expected = {
        MASK: "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        "maskrcnn_resnet50_fpn_v2": "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
        KEYPOINT: "keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
    }
    for name, filename in expected.items():
        spec = get_model_spec(name)
        assert spec.filename == filename
        assert spec.url == f"https://download.pytorch.org/models/{filename}"
        assert spec.sha256_prefix == filename.rsplit("-", 1)[1][:8]
        assert spec.sha256 is None or spec.sha256.startswith(spec.sha256_prefix)
    assert get_model_spec(KEYPOINT).has_keypoints and not get_model_spec(KEYPOINT).has_masks
    assert len(get_model_spec(MASK).categories) == 91 and get_model_spec(KEYPOINT).categories[1] == "person"


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        get_model_spec("maskrcnn_resnet101")
    message = str(info.value)
    assert "maskrcnn_resnet101" in message
    assert all(name in message for name in MODELS)


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.package_file is None])
def test_builder_is_torchvisions_architecture(name: str) -> None:
    """Same keys and shapes as torchvision's own builder; v1 models use FrozenBatchNorm2d(eps=0)."""
    import torchvision.models.detection as det
    from torchvision.ops.misc import FrozenBatchNorm2d

    ours = get_model_spec(name).build()
    theirs = getattr(det, name)(weights=None, weights_backbone=None)
    assert type(ours) is type(theirs)

    def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
        return {
            k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
        }

    assert shapes(ours) == shapes(theirs)
    frozen = [m for m in ours.modules() if isinstance(m, FrozenBatchNorm2d)]
    if name.endswith("_v2"):
        assert not frozen
    else:
        assert frozen and all(m.eps == 0.0 for m in frozen)


# -- resolve_weights: lookup order ------------------------------------------------------


def test_lookup_order(dirs: dict[str, Path]) -> None:
    data = b"tiny weights"
    spec = tiny_spec(data)
    (dirs["hub"]).mkdir(parents=True)
    (dirs["hub"] / spec.filename).write_bytes(data)
    assert resolve_weights(spec, None, allow_download=False) == dirs["hub"] / spec.filename
    (dirs["env"] / spec.filename).write_bytes(data)
    assert resolve_weights(spec, None, allow_download=False) == dirs["env"] / spec.filename
    explicit = dirs["tmp"] / "mine.pth"
    explicit.write_bytes(b"my own fine-tuned weights")  # another name: not hashed
    assert resolve_weights(spec, str(explicit), allow_download=False) == explicit
    assert resolve_weights(spec, str(dirs["env"]), allow_download=False) == dirs["env"] / spec.filename
    assert resolve_weights(spec, "random") is None


def test_explicit_missing_path(dirs: dict[str, Path]) -> None:
    with pytest.raises(WeightsError, match="no such weights file"):
        resolve_weights(get_model_spec(MASK), str(dirs["tmp"] / "nope.pth"))


@pytest.mark.parametrize("where", ["env", "hub", "explicit"])
def test_sha256_mismatch(dirs: dict[str, Path], where: str) -> None:
    spec = get_model_spec(MASK)
    folder = dirs["hub"] if where == "hub" else dirs["env"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.filename
    path.write_bytes(b"not the real checkpoint")
    got = hashlib.sha256(b"not the real checkpoint").hexdigest()[:8]
    with pytest.raises(WeightsError) as info:
        resolve_weights(spec, str(path) if where == "explicit" else None, allow_download=False)
    message = str(info.value)
    assert message.startswith(f"{path}: sha256 mismatch for {MASK}: expected bf2d0c1e..., got {got}...")
    assert "corrupt or wrong file; delete it and download again" in message
    assert "\n" not in message


def test_full_sha256_checked_when_known(dirs: dict[str, Path]) -> None:
    data = b"tiny weights"
    digest = hashlib.sha256(data).hexdigest()
    good = tiny_spec(data, sha256=digest)
    (dirs["env"] / good.filename).write_bytes(data)
    assert resolve_weights(good, None) == dirs["env"] / good.filename
    wrong = dataclasses.replace(good, sha256=digest[:8] + "0" * 56)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        resolve_weights(wrong, None)


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 3_000_000)
    assert file_sha256(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


# -- resolve_weights: offline and downloads --------------------------------------------


def _assert_where_to_put(message: str, spec: ModelSpec, dirs: dict[str, Path]) -> None:
    assert spec.filename in message
    assert spec.url in message
    assert str(dirs["env"]) in message and str(dirs["hub"]) in message
    assert "\n" not in message


def test_offline_env(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSEG_OFFLINE", "1")
    spec = get_model_spec(MASK)
    with pytest.raises(WeightsError) as info:
        resolve_weights(spec, None)
    _assert_where_to_put(str(info.value), spec, dirs)
    assert "STREAMSEG_OFFLINE" in str(info.value)


def test_allow_download_false(dirs: dict[str, Path]) -> None:
    spec = get_model_spec(KEYPOINT)
    with pytest.raises(WeightsError) as info:
        resolve_weights(spec, None, allow_download=False)
    _assert_where_to_put(str(info.value), spec, dirs)


def test_offline_message_without_env_dir(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMSEG_WEIGHTS")
    monkeypatch.setenv("STREAMSEG_OFFLINE", "1")
    spec = get_model_spec(MASK)
    with pytest.raises(WeightsError) as info:
        resolve_weights(spec, None)
    assert str(dirs["hub"]) in str(info.value) and "$STREAMSEG_WEIGHTS" in str(info.value)


def test_failed_download_is_fast_and_clear(dirs: dict[str, Path]) -> None:
    spec = dataclasses.replace(get_model_spec(MASK), url=f"http://127.0.0.1:{closed_port()}/x.pth")
    start = time.monotonic()
    with pytest.raises(WeightsError) as info:
        resolve_weights(spec, None, progress=False)
    assert time.monotonic() - start < weights_mod.DOWNLOAD_TIMEOUT_S
    message = str(info.value)
    _assert_where_to_put(message, spec, dirs)
    assert "download" in message
    leftovers = list(dirs["hub"].glob("*")) if dirs["hub"].exists() else []
    assert leftovers == []


def test_download_into_hub_cache(dirs: dict[str, Path], http_server: tuple[str, dict[str, bytes]]) -> None:
    base, files = http_server
    data = b"checkpoint bytes " * 1000
    spec = tiny_spec(data, url=f"{base}/tiny.pth")
    files["/tiny.pth"] = data
    path = resolve_weights(spec, None, progress=False)
    assert path == dirs["hub"] / spec.filename and path.read_bytes() == data
    files.clear()  # now found in the cache, no second download
    assert resolve_weights(spec, None, progress=False) == path


def test_download_hash_mismatch_leaves_nothing(
    dirs: dict[str, Path], http_server: tuple[str, dict[str, bytes]]
) -> None:
    base, files = http_server
    spec = tiny_spec(b"the real bytes", url=f"{base}/tiny.pth")
    files["/tiny.pth"] = b"something else"
    with pytest.raises(WeightsError, match="sha256 mismatch for tiny"):
        resolve_weights(spec, None, progress=False)
    assert list(dirs["hub"].iterdir()) == []


def test_download_http_error(dirs: dict[str, Path], http_server: tuple[str, dict[str, bytes]]) -> None:
    base, _ = http_server
    spec = tiny_spec(b"x", url=f"{base}/missing.pth")
    with pytest.raises(WeightsError, match="404"):
        resolve_weights(spec, None, progress=False)


# -- load_model -----------------------------------------------------------------------


def test_random_weights_warn_every_time(caplog: pytest.LogCaptureFixture) -> None:
    spec = get_model_spec(MASK)
    caplog.set_level(logging.WARNING, logger="streamseg")
    before = torch.random.get_rng_state()
    model_a, random_a = load_model(spec, "random", seed=0, box_score_thresh=0.0)
    model_b, random_b = load_model(spec, "RANDOM", seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    assert random_a and random_b
    assert not model_a.training
    assert model_a.roi_heads.score_thresh == 0.0 and model_b.roi_heads.score_thresh == 0.05
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "streamseg"]
    assert len(warnings) == 2
    assert "seeded RANDOM weights (seed 0)" in warnings[0].getMessage() and MASK in warnings[0].getMessage()
    key = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(model_a.state_dict()[key], model_b.state_dict()[key])
    model_c, _ = load_model(spec, "random", seed=1)
    assert not torch.equal(model_a.state_dict()[key], model_c.state_dict()[key])


def test_model_kwargs() -> None:
    model, _ = load_model(
        get_model_spec(KEYPOINT), "random", min_size=320, max_size=533, detections_per_img=7
    )
    assert model.transform.min_size == (320,) and model.transform.max_size == 533
    assert model.roi_heads.detections_per_img == 7


def test_load_explicit_file(mask_state_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="streamseg")
    model, random = load_model(get_model_spec(MASK), str(mask_state_file))
    assert not random and not caplog.records
    saved = torch.load(mask_state_file, weights_only=True)
    key = "roi_heads.mask_predictor.mask_fcn_logits.weight"
    assert torch.equal(model.state_dict()[key], saved[key])


@pytest.mark.parametrize("wrap", ["model", "state_dict", "module."])
def test_training_checkpoints_accepted(tmp_path: Path, wrap: str) -> None:
    model = Tiny()
    state = model.state_dict()
    if wrap == "module.":
        obj: object = {f"module.{k}": v for k, v in state.items()}
    else:
        obj = {wrap: state, "epoch": 3, "optimizer": {"lr": torch.tensor(0.1)}}
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    loaded = read_state_dict(path)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)


def test_registry_named_file_is_verified_and_loaded(dirs: dict[str, Path]) -> None:
    torch.manual_seed(3)
    tmp = dirs["tmp"] / "tiny.pth"
    torch.save(Tiny().state_dict(), tmp)
    data = tmp.read_bytes()
    spec = tiny_spec(data, builder=Tiny)
    (dirs["env"] / spec.filename).write_bytes(data)
    model, random = load_model(spec, None, allow_download=False)
    assert not random and torch.equal(model.fc.weight, torch.load(tmp, weights_only=True)["fc.weight"])


def test_truncated_file(mask_state_file: Path, tmp_path: Path) -> None:
    data = mask_state_file.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as info:
        load_model(get_model_spec(MASK), str(path))
    assert str(info.value).startswith(f"{path}: cannot read weights (truncated or corrupt file:")
    assert "\n" not in str(info.value)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"\x00\x01 definitely not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="cannot read weights"):
        read_state_dict(path)


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(WeightsError, match="not a state dict"):
        read_state_dict(path)


def test_pickled_module_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(WeightsError, match="not a plain state dict"):
        read_state_dict(path)


def test_other_architecture(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "keypoint.pth"
    torch.save(get_model_spec(KEYPOINT).build().state_dict(), path)
    with pytest.raises(WeightsError) as info:
        load_model(get_model_spec(MASK), str(path))
    message = str(info.value)
    assert message.startswith(f"{path} is not a {MASK} state dict: ")
    assert "missing keys (roi_heads.mask_head" in message
    assert "unexpected keys (roi_heads.keypoint_head" in message
    assert "shape mismatches (roi_heads.box_predictor.bbox_pred.bias: file (8,) vs model (364,)" in message
    assert "\n" not in message


def test_shape_mismatch_only(mask_state_file: Path, tmp_path: Path) -> None:
    state = torch.load(mask_state_file, weights_only=True)
    state["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(2, 1024)
    path = tmp_path / "bad_shape.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        load_model(get_model_spec(MASK), str(path))
    message = str(info.value)
    assert (
        "1 shape mismatches (roi_heads.box_predictor.cls_score.weight: file (2, 1024) vs model (91, 1024))"
        in message
    )
    assert "missing" not in message and "unexpected" not in message
