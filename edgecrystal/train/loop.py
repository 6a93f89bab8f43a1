"""The training loop both models share: device strategy, per-epoch checkpoints that a resumed
run continues from, the best-so-far weights by a validation metric, TensorBoard logs."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from ..atomic import write_json
from ..errors import EdgeCrystalError, UsageError
from ..models import _keras

if TYPE_CHECKING:  # Keras and TensorFlow load inside models._keras(), at the first model
    import keras
    import numpy as np
    import tensorflow as tf

log = logging.getLogger(__name__)

STATE = "state.json"
LAST = "last.keras"
BEST = "best.weights.h5"


class TrainingHP(Protocol):
    """What the loop reads of a model's hyperparameters (profiles.FinderHP, ClassifierHP)."""

    @property
    def epochs(self) -> int: ...

    @property
    def batch_size(self) -> int: ...


class CheckpointState(TypedDict, total=False):
    """state.json beside the checkpoints: where a resumed run continues from."""

    epoch: int  # the last complete epoch (1-based)
    best_value: float | None
    best_epoch: int
    history: list[dict[str, float]]
    monitor: str
    mode: str
    hyperparameters: dict[str, object]


def strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over every GPU when more than one is visible, else the default one."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def optimizer(name: str, lr: float | keras.optimizers.schedules.LearningRateSchedule
              ) -> keras.optimizers.Optimizer:
    keras = _keras()
    table = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop,
             "sgd": keras.optimizers.SGD}
    if name.lower() not in table:
        raise UsageError(f"unknown optimizer {name!r} (choose {', '.join(table)})")
    return table[name.lower()](learning_rate=lr)


def set_bn_momentum(model: keras.Model, momentum: float) -> keras.Model:
    """Set the moving-average momentum of every BatchNormalization layer, nested ones too."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer).__name__ == "BatchNormalization":
            layer.momentum = momentum
    return model


@dataclass
class FitResult:
    model: keras.Model  # the model with the best weights loaded
    history: list[dict[str, float]]  # one entry per epoch, resumed epochs included
    initial_epoch: int
    epochs: int
    best_epoch: int
    best_value: float
    monitor: str


class EpochCheckpoint:
    """Keras callback factory (the class needs Keras, which loads lazily)."""

    @staticmethod
    def make(ckpt_dir: Path, monitor: str, mode: str, state: CheckpointState,
             on_epoch: Callable[[int], None], stop: dict[str, bool],
             announce_of: int = 0) -> keras.callbacks.Callback:
        """`announce_of`: the epoch count, to log one line per epoch (when Keras prints
        nothing: `train` without -v was silent for minutes); 0: say nothing."""
        keras = _keras()

        callback_base: Any = keras.callbacks.Callback  # Keras has no type information

        class _Checkpoint(callback_base):
            def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                on_epoch(epoch)

            def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
                if stop["requested"]:
                    self.model.stop_training = True

            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                if stop["requested"]:
                    return  # an interrupted epoch is not complete: keep the last checkpoint
                logs = {k: float(v) for k, v in (logs or {}).items()}
                value = logs.get(monitor, math.nan)
                best = state.get("best_value")
                better = best is None or (not math.isnan(value) and (
                    value > best if mode == "max" else value < best))
                if better:
                    _atomic_save(self.model.save_weights, ckpt_dir / BEST)
                    state.update({"best_value": value, "best_epoch": epoch + 1})
                # Model with optimizer state, then the epoch counter: the counter never names
                # an epoch whose model is not on disk.
                _atomic_save(self.model.save, ckpt_dir / LAST)
                state["history"].append({"epoch": epoch + 1, **logs})
                state["epoch"] = epoch + 1
                write_json(ckpt_dir / STATE, state)
                if announce_of:
                    figures = ", ".join(f"{k} {v:.4g}" for k, v in logs.items())
                    log.info("epoch %d/%d: %s%s", epoch + 1, announce_of, figures,
                             " (best so far)" if better else "")

        return _Checkpoint()


def _atomic_save(save: Callable[[str], None], path: Path) -> None:
    tmp = path.with_name(path.name.replace(".", ".tmp.", 1))
    save(str(tmp))
    os.replace(tmp, path)


def fit(
    *,
    build: Callable[[], keras.Model],
    compile_model: Callable[[keras.Model], None],
    train_data: keras.utils.PyDataset,
    val_data: tuple[np.ndarray, np.ndarray] | None,
    hp: TrainingHP,
    hp_dict: dict[str, object],
    arch_keys: tuple[str, ...],
    ckpt_dir: Path,
    log_dir: Path | None,
    monitor: str,
    mode: str,
    resume: bool,
    verbose: int,
    restore_best: bool = True,
) -> FitResult:
    """Train `build()` on `train_data` (a PyDataset with an `epoch` attribute) for hp.epochs.
    With restore_best the returned model holds the best epoch's weights by `monitor`, else the
    last epoch's (when `val_data` is a test set, choosing by it would flatter the result).
    `val_data` None: no validation (`monitor` then names a training metric)."""
    keras = _keras()
    state_path = ckpt_dir / STATE
    state: CheckpointState | None = None
    if resume and state_path.is_file() and (ckpt_dir / LAST).is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        # A key the checkpoint predates (the classifier's backbone) is not a change.
        saved = state["hyperparameters"]
        changed = [k for k in arch_keys if k in saved and saved[k] != hp_dict.get(k)]
        if changed:
            raise UsageError(f"cannot resume {ckpt_dir}: {', '.join(changed)} differ from the "
                             "checkpoint (drop --resume to start over)")
    elif ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    with strategy().scope():
        if state is not None:
            model = keras.models.load_model(str(ckpt_dir / LAST))
            initial_epoch = int(state["epoch"])
            if verbose:
                log.info("resuming from epoch %d of %d (%s)", initial_epoch, hp.epochs, ckpt_dir)
        else:
            model = build()
            compile_model(model)
            initial_epoch = 0
            state = {"epoch": 0, "best_value": None, "best_epoch": 0, "history": []}
    state.update({"monitor": monitor, "mode": mode, "hyperparameters": hp_dict})

    def set_epoch(epoch: int) -> None:
        train_data.epoch = epoch

    stop = {"requested": False}
    callbacks = [EpochCheckpoint.make(ckpt_dir, monitor, mode, state, set_epoch, stop,
                                      announce_of=hp.epochs if verbose == 0 else 0)]
    if log_dir is not None and _has_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False,
                                                     profile_batch=0))
    if initial_epoch < hp.epochs:
        with _graceful_interrupt(stop):
            model.fit(train_data, validation_data=val_data, epochs=hp.epochs,
                      initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
                      validation_batch_size=hp.batch_size)
        if stop["requested"]:
            raise TrainingInterrupted(interrupted_message(int(state["epoch"]), hp.epochs,
                                                          ckpt_dir))
    if restore_best and (ckpt_dir / BEST).is_file():
        model.load_weights(str(ckpt_dir / BEST))
    return FitResult(model, list(state["history"]), initial_epoch, int(state["epoch"]),
                     int(state.get("best_epoch", 0)), _num(state.get("best_value")), monitor)


def interrupted_message(completed: int, total: int, ckpt_dir: Path) -> str:
    """What Ctrl-C left: the epoch that was cut short (Keras' 1-based "Epoch N/M" that was on
    screen) and the last complete one on disk; the cut epoch's partial work is not kept."""
    cut = min(completed + 1, total)
    if completed == 0:
        return (f"training interrupted during epoch 1 of {total}; no epoch was complete, so "
                "nothing was saved: run the command again to start over")
    return (f"training interrupted during epoch {cut} of {total}; epoch {completed} (the last "
            f"complete one) is checkpointed in {ckpt_dir}: run the same command with --resume "
            f"to continue from epoch {completed + 1}")


class TrainingInterrupted(EdgeCrystalError):
    """Ctrl-C or SIGTERM during training: the last complete epoch is on disk."""

    exit_code = 130


@contextlib.contextmanager
def _graceful_interrupt(stop: dict[str, bool]) -> Iterator[None]:
    """SIGINT/SIGTERM ask training to stop after the current batch instead of raising inside
    TensorFlow (where a KeyboardInterrupt was sometimes lost and the process exited 0). A second
    signal falls back to the default behaviour, so Ctrl-C twice still stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request(signum: int, _frame: FrameType | None) -> None:
        stop["requested"] = True
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    for sig in previous:
        signal.signal(sig, request)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _has_tensorboard() -> bool:
    # tensorflow-cpu does not depend on tensorboard; without it, training goes on unlogged.
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _num(v: float | None) -> float:
    return math.nan if v is None else float(v)


def save_clean(model: keras.Model, build: Callable[[], keras.Model], path: Path) -> None:
    """Write the deployable model: a fresh, uncompiled copy with `model`'s weights (no optimizer
    state to carry, no training-only objects to deserialise)."""
    fresh = build()
    fresh.set_weights(model.get_weights())
    _atomic_save(fresh.save, path)
