"""The training loop: the model, the learning-rate schedule, checkpoints (:func:`train`).

Losses are torchvision's own (``model(images, targets)`` in train mode). Optimiser:
AdamW (Loshchilov and Hutter 2019) with linear warm-up and a cosine decay over
training progress, where progress is the larger of ``iteration / iters`` and
``elapsed / time_limit`` (so a time-limited run still anneals). Checkpoints:
``OUT/last.pt`` (resumable: model, optimiser, iteration, seconds, categories,
history) and the final model (``{"model", "categories", "meta"}``); both load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ConfigError, WeightsError
from streamseg.train.data import CocoTrainingSet, collate

__all__ = ["TrainConfig", "build_model", "train"]


# --------------------------------------------------------------------------- model


def build_model(num_classes: int, **kwargs: Any) -> Any:
    """The trainable architecture: :func:`~streamseg.models.demo_model.build_maskrcnn_keypoint_model`."""
    from streamseg.models.demo_model import build_maskrcnn_keypoint_model

    return build_maskrcnn_keypoint_model(num_classes, **kwargs)


def _check_architecture(model: Any, state: dict[str, Any], path: Path) -> None:
    """WeightsError unless ``state`` has exactly the model's keys and shapes."""
    from streamseg.models.weights import state_dict_problems

    problems = state_dict_problems(model, state)
    if problems:
        raise WeightsError(
            f"{path} is a checkpoint of another architecture than this training run: {'; '.join(problems)}"
        )


# --------------------------------------------------------------------------- training


class TrainConfig:
    """Settings of one training run (plain attributes, as the flags of ``streamseg train`` describe)."""

    def __init__(
        self,
        *,
        out_dir: str | os.PathLike[str],
        iters: int = 1000,
        time_limit_min: float | None = None,
        batch_size: int = 4,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup: int = 100,
        seed: int = 0,
        device: str = "cpu",
        checkpoint_every: int = 200,
        resume: str | os.PathLike[str] | None = None,
        final: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        workers: int = 0,
        progress: bool = True,
        log_every: int = 20,
    ) -> None:
        if iters < 1:
            raise ConfigError(f"--iters must be at least 1, got {iters}")
        if batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
        if not lr > 0:
            raise ConfigError(f"--lr must be > 0, got {lr}")
        if time_limit_min is not None and not time_limit_min > 0:
            raise ConfigError(f"--time-limit must be > 0 minutes, got {time_limit_min}")
        self.out_dir = Path(out_dir)
        self.iters = int(iters)
        self.time_limit_s = None if time_limit_min is None else float(time_limit_min) * 60.0
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.warmup = int(warmup)
        self.seed = int(seed)
        self.device = device
        self.checkpoint_every = int(checkpoint_every)
        self.resume = None if resume is None else Path(resume)
        self.final = Path(final) if final is not None else self.out_dir / "final.pt"
        self.threads = threads
        self.workers = int(workers)
        self.progress = progress
        self.log_every = int(log_every)


def _lr_factor(progress: float, iteration: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` iterations, then cosine from 1 to 0.02 over progress [0, 1]."""
    warm = min(1.0, (iteration + 1) / warmup) if warmup > 0 else 1.0
    cosine = 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return warm * cosine


def _batches(
    dataset: CocoTrainingSet, batch_size: int, seed: int, workers: int, start_epoch: int
) -> Iterator[Any]:
    """Endless shuffled batches (a new permutation per epoch, seeded by ``seed + epoch``)."""
    import torch
    from torch.utils.data import DataLoader

    epoch = start_epoch
    while True:
        gen = torch.Generator().manual_seed(seed + epoch)
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=gen,
            collate_fn=collate,
            num_workers=workers,
            drop_last=len(dataset) >= batch_size,
        )
        yield from loader
        epoch += 1


def _device(device: str) -> Any:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r} (use cpu, cuda or cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device}: use cpu, cuda or cuda:N")
    return dev


def train(dataset: CocoTrainingSet, config: TrainConfig) -> dict[str, Any]:
    """Train on ``dataset`` and write the checkpoints.

    Args:
        dataset: the training set.
        config: the run's settings.

    Returns:
        Summary: ``iterations``, ``seconds`` (wall time of this and resumed runs),
        ``losses`` (mean of each loss over the last ``log_every`` iterations), ``final``
        (path of the final checkpoint), ``last`` (path of the resumable checkpoint).

    Raises:
        WeightsError: ``--resume`` file unreadable or of another architecture.
        ConfigError: bad settings (device).
    """
    import torch
    from tqdm import tqdm

    from streamseg.models.weights import read_state_dict

    dev = _device(config.device)
    if config.threads:
        torch.set_num_threads(int(config.threads))
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    model = build_model(dataset.num_classes).to(dev)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    start_iter, elapsed_before, history = 0, 0.0, []
    if config.resume is not None:
        if not config.resume.is_file():
            raise WeightsError(f"{config.resume}: no such checkpoint to resume from")
        state = read_state_dict(config.resume)
        _check_architecture(model, state, config.resume)
        model.load_state_dict(state)
        full = torch.load(config.resume, map_location="cpu", weights_only=True)
        if isinstance(full, dict) and "optimizer" in full:
            try:
                optimizer.load_state_dict(full["optimizer"])
            except (ValueError, KeyError) as exc:
                raise WeightsError(
                    f"{config.resume}: optimiser state does not fit this model ({exc})"
                ) from exc
            start_iter = int(full.get("iteration", 0))
            elapsed_before = float(full.get("seconds", 0.0))
            history = list(full.get("history", []))
    config.out_dir.mkdir(parents=True, exist_ok=True)
    last_path = config.out_dir / "last.pt"
    log_path = config.out_dir / "log.jsonl"

    def save_last(iteration: int, seconds: float) -> None:
        tmp = last_path.with_suffix(".pt.tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "iteration": iteration,
                "seconds": seconds,
                "categories": list(dataset.categories),
                "history": history,
            },
            tmp,
        )
        os.replace(tmp, last_path)

    epoch0 = start_iter * config.batch_size // max(1, len(dataset))
    batches = _batches(dataset, config.batch_size, config.seed, config.workers, epoch0)
    window: dict[str, list[float]] = {}
    t_start = time.perf_counter()
    iteration = start_iter
    bar = tqdm(
        total=config.iters,
        initial=start_iter,
        desc="train",
        unit="it",
        disable=not config.progress,
        dynamic_ncols=True,
    )

    def progress_now() -> float:
        seconds = elapsed_before + time.perf_counter() - t_start
        p = iteration / config.iters
        if config.time_limit_s is not None:
            p = max(p, seconds / config.time_limit_s)
        return p

    with bar, open(log_path, "a") as log:
        while progress_now() < 1.0:
            factor = _lr_factor(progress_now(), iteration, config.warmup)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * factor
            images, targets = next(batches)
            images = [im.to(dev, non_blocking=True) for im in images]
            targets = [{k: (v.to(dev) if hasattr(v, "to") else v) for k, v in t.items()} for t in targets]
            losses = model(images, targets)
            total = sum(losses.values())
            if not torch.isfinite(total):
                raise ConfigError(
                    f"training diverged at iteration {iteration} (loss {float(total)}); lower --lr"
                )
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            iteration += 1
            for k, v in losses.items():
                window.setdefault(k, []).append(float(v.detach()))
            window.setdefault("loss", []).append(float(total.detach()))
            for k in window:
                window[k] = window[k][-config.log_every :]
            means = {k: sum(v) / len(v) for k, v in window.items()}
            bar.update(1)
            bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in means.items()}, refresh=False)
            seconds = elapsed_before + time.perf_counter() - t_start
            if iteration % config.log_every == 0:
                entry = {"iteration": iteration, "seconds": round(seconds, 1), "lr": config.lr * factor}
                entry.update({k: round(v, 4) for k, v in means.items()})
                history.append(entry)
                log.write(json.dumps(entry) + "\n")
                log.flush()
            if config.checkpoint_every > 0 and iteration % config.checkpoint_every == 0:
                save_last(iteration, seconds)
    seconds = elapsed_before + time.perf_counter() - t_start
    save_last(iteration, seconds)
    means = {k: sum(v) / len(v) for k, v in window.items()} if window else {}
    config.final.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "categories": list(dataset.categories),
            "meta": {
                "iterations": iteration,
                "seconds": round(seconds, 1),
                "batch_size": config.batch_size,
                "lr": config.lr,
                "seed": config.seed,
                "dataset": str(dataset.path),
                "images": len(dataset),
                "final_losses": {k: round(v, 4) for k, v in means.items()},
            },
        },
        config.final,
    )
    return {
        "iterations": iteration,
        "seconds": seconds,
        "losses": means,
        "final": config.final,
        "last": last_path,
    }
