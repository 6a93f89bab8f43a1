"""`edgecrystal score --ray [ADDRESS]`: an archive re-score spread over a Ray cluster.

The driver (the machine that runs the command) finds the images, cuts the list into chunks and
hands them to `ScoringWorker` actors, one per `threads` CPUs of the cluster (one CPU each by
default). Each actor opens the bundle's pipeline once (session.open_pipeline, as `score` does),
then for every chunk skips what is already scored by its own models (`scoring.unscored`, the
skip rule of `score`, with its runtime fingerprint), scores the rest and writes each result
file beside its image, atomically. So the images, the bundle and the results must be at the
same paths on every node (shared storage), and a run killed at any point is finished by running
the same command again: what was written is kept and skipped, nothing is scored twice. The
driver adds every result to the index (`--index`) as chunks come back, writes the per-folder
summaries at the end and returns the same `ScoreReport` as `score`: that is `scoring.drive`,
the driver of every score run; this module only supplies where the chunks run.

Ray is imported only inside `score_paths_on_ray` and the actor it starts; without the `ray`
extra the CLI says so in one line.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..bundle import Bundle
from ..errors import EdgeCrystalError, UsageError, one_line
from ..pipeline import Pipeline
from ..scoring import (
    ScoreOptions,
    ScoreReport,
    ShareReport,
    drive,
    find_images,
    open_options,
    score_with,
    unscored,
)
from .loopback import start_local_ray

if TYPE_CHECKING:  # Ray loads inside the functions that need it
    from ray.actor import ActorHandle

log = logging.getLogger(__name__)

LOCAL = "local"  # `--ray` without an address: start (or attach to) a Ray instance on this machine
# Enough chunks per actor that a slow node does not hold the end of the run back, few enough
# that Ray's per-task cost (about a millisecond) stays small against scoring a chunk.
CHUNKS_PER_ACTOR = 8
MAX_CHUNK = 1024
PROBE_TIMEOUT_S = 10.0


class RayRunError(EdgeCrystalError):
    """The cluster failed mid-run (a node or worker lost, a result that could not be written)."""


class ScoringWorker:
    """One pipeline per actor: `load` opens the bundle and its runners once, `score_chunk` then
    runs for chunk after chunk. (Opening in a method rather than in __init__ lets a bundle or
    backend error come back to the driver as the project's own exception.)"""

    def __init__(self, bundle_path: str, options: ScoreOptions) -> None:
        self._bundle_path = Path(bundle_path)
        self._options = options
        self._pipeline: Pipeline | None = None

    def load(self) -> tuple[str, str]:
        """Open the bundle and load its models; returns (backend, the backend's one-line
        description)."""
        self._pipeline = open_options(self._bundle_path, self._options)
        self._pipeline.activate()  # a model that cannot load says so before any chunk
        selection = self._pipeline.selection
        assert selection is not None  # open_pipeline always records it
        return selection.backend, selection.describe()

    def score_chunk(self, paths: list[str]) -> ShareReport:
        """The skip rule and scoring of one chunk, on this actor's models."""
        if self._pipeline is None:
            raise RuntimeError("ScoringWorker.score_chunk before load")
        options = self._options
        todo, share = unscored([Path(p) for p in paths], self._pipeline.model.fingerprint,
                               options.force)
        return share.merged(score_with(self._pipeline, todo, options, log.debug))

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None


def score_paths_on_ray(bundle_path: Path, paths: list[Path], options: ScoreOptions,
                       address: str | None = None,
                       progress: Callable[[str], None] | None = None) -> ScoreReport:
    """Score the image files and folders in `paths` on the Ray cluster at `address` ("auto",
    "HOST:PORT", "ray://HOST:PORT"; None or "local": start or attach to one on this machine).
    Uses the Ray connection already open in this process, if there is one."""
    import ray

    say = progress or log.info
    if address not in (None, "", LOCAL, "auto") and Path(str(address)).exists():
        # `score B --ray PLATE/`: the folder was taken as the address and is missing from PATHS.
        raise UsageError(f"--ray took {address} as the cluster's address: put --ray after the "
                         "paths, or give it an address (local, auto, HOST:PORT)")
    images = find_images(paths, options.recursive)
    bundle = Bundle.open(bundle_path)  # a bad bundle fails here in one line, before any cluster
    started_here = _connect(address)
    try:
        return _score_on_cluster(ray, bundle, images, options, say)
    finally:
        if started_here:
            ray.shutdown()


def _score_on_cluster(ray: ModuleType, bundle: Bundle, images: list[Path], options: ScoreOptions,
                      say: Callable[[str], None]) -> ScoreReport:
    from ray.util import ActorPool

    cpus_per_actor = max(1, options.threads)
    cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
    chunk = _chunk_size(len(images), max(1, cluster_cpus // cpus_per_actor), options.batch)
    chunks = [images[i : i + chunk] for i in range(0, len(images), chunk)]
    count = max(1, min(cluster_cpus // cpus_per_actor, len(chunks)))
    # Any: Ray types actor handles only through its own generics, which mypy cannot follow here.
    worker_class: Any = ray.remote(num_cpus=cpus_per_actor)(ScoringWorker)
    actor_options = dataclasses.replace(options, threads=cpus_per_actor)
    actors = [worker_class.remote(str(bundle.root.resolve()), actor_options)
              for _ in range(count)]
    loaded = _get(ray, [actor.load.remote() for actor in actors])
    say(f"backend: {loaded[0][1]} (Ray: {count} worker(s) x {cpus_per_actor} CPU, "
        f"{len(chunks)} chunk(s) of up to {chunk} images)")
    report = ScoreReport(bundle.classes, "+".join(sorted({backend for backend, _ in loaded})),
                         options.precision)
    outcomes = ActorPool(actors).map_unordered(
        lambda actor, part: actor.score_chunk.remote([str(p) for p in part]), chunks)
    return drive(report, images, options, _chunks_done(ray, outcomes, actors, len(images), say))


def _chunks_done(ray: ModuleType, outcomes: Iterator[ShareReport], actors: list[ActorHandle],
                 total: int, say: Callable[[str], None]) -> Iterator[ShareReport]:
    """Each chunk's share as it comes back, one progress line each; the actors closed at the
    end."""
    done = skipped = 0
    for outcome in _checked(ray, outcomes):
        done, skipped = done + outcome.scored + outcome.skipped, skipped + outcome.skipped
        yield outcome
        say(f"done {done}/{total} ({skipped} already scored)")
    _get(ray, [actor.close.remote() for actor in actors])


def _chunk_size(images: int, actors: int, batch: int) -> int:
    """Whole batches, about CHUNKS_PER_ACTOR chunks per actor, at most MAX_CHUNK images."""
    per_chunk = math.ceil(images / (actors * CHUNKS_PER_ACTOR)) if images else 1
    return max(batch, min(MAX_CHUNK, math.ceil(per_chunk / batch) * batch))


def _connect(address: str | None) -> bool:
    """Connect this process to Ray unless it already is; True when this call connected (and the
    caller must disconnect)."""
    import ray

    if ray.is_initialized():
        return False
    target = None if address in (None, "", LOCAL) else address
    if target is not None:
        _probe(target)
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "logging_level": logging.WARNING}
    try:
        if target is None:
            start_local_ray(**options)  # its servers on 127.0.0.1 only
        else:
            ray.init(address=target, **options)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        where = target or "this machine"
        raise UsageError(f"cannot use the Ray cluster at {where}: {one_line(exc)}") from exc
    return True


def _probe(address: str) -> None:
    """A HOST:PORT that nothing answers on fails here in one line: ray.init would retry for
    many minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: Ray finds the address and says when it cannot
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(f"no Ray cluster answers at {address}: {one_line(exc)} (start one "
                         "with `ray start --head`, or check the address)") from exc


def _get(ray: ModuleType, refs: list[Any]) -> list[Any]:
    """ray.get, with a worker's own error (a bad bundle, a backend that cannot run) raised as
    that error, and a lost worker as one RayRunError line."""
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayError as exc:
        raise _as_run_error(exc) from exc


def _checked(ray: ModuleType, outcomes: Iterator[ShareReport]) -> Iterator[ShareReport]:
    """The pool's outcomes, failures turned into one line as in `_get`."""
    try:
        yield from outcomes
    except ray.exceptions.RayError as exc:
        raise _as_run_error(exc) from exc


def _as_run_error(exc: BaseException) -> EdgeCrystalError:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, EdgeCrystalError):
        return cause
    return RayRunError(f"the Ray run stopped: {one_line(cause or exc)}; the results written so "
                       "far are kept: run the same command again to finish")
