"""Where per-image work runs: in this process (the default), on a local Dask cluster of worker
processes (``--workers N``), or on a Dask cluster that runs already (``--scheduler ADDRESS``,
e.g. one started by ``dask-jobqueue`` on SLURM).

Only the driver (this process) writes results; workers read images from paths (they share
the file system), load a model once per process (:func:`cached_model`, keyed by its file's
sha256, checked), write label images under temporary names, and return small results. The
driver keeps a bounded number of tasks in flight and yields results in the input order, so
memory does not grow with the number of images and the output is the same as in one process.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from loop.core.readahead import prefetch_each, read_ahead
from loop.errors import EngineError

_MODELS: OrderedDict[tuple[str, str, str, bool | None], object] = OrderedDict()
KEEP_MODELS = 2  # models kept loaded per process (a round's model and its parent)


@dataclass(frozen=True)
class Engine:
    """How to run per-image work."""

    workers: int = 1
    """Local worker processes; 1 (and no scheduler): in this process."""
    scheduler: str | None = None
    """Address of a running Dask scheduler (``tcp://host:8786``); overrides ``workers``."""
    in_flight: int = 0
    """Tasks submitted ahead of the results read; 0: two per worker thread."""
    chunk: int = 0
    """Items per task on a cluster; 0: :func:`chunk_size` (four tasks per worker thread)."""
    timeout: float = 30.0
    """Seconds to reach the scheduler."""
    cluster: bool = False
    """A local cluster even of one worker (the work leaves this process)."""

    def __post_init__(self):
        if self.workers < 1:
            raise EngineError(f"--workers {self.workers}: give 1 (this process) or more")
        if self.chunk < 0:
            raise EngineError(f"chunk {self.chunk}: give 0 (automatic) or more items per task")
        if self.scheduler is not None and "://" not in self.scheduler:
            raise EngineError(
                f"--scheduler {self.scheduler}: give the scheduler's address with its protocol, "
                "e.g. tcp://head-node:8786"
            )

    @property
    def distributed(self) -> bool:
        return self.workers > 1 or self.scheduler is not None or self.cluster


def engine_for(cluster) -> Engine:
    """The engine of a study's ``[cluster]`` section (:class:`loop.config.ClusterConfig`)."""
    return Engine(workers=cluster.workers, scheduler=cluster.scheduler or None)


@dataclass(frozen=True)
class TaskFailed:
    """An item whose task failed on the cluster twice (e.g. its worker died both times)."""

    error: str


def cached_model(kind: str, path: str | Path, sha256: str, gpu: bool | None):
    """The model at ``path``, loaded once per process (a worker keeps it between tasks); its
    file must still have the recorded ``sha256``.

    Raises
    ------
    ModelError
        When the file is missing or changed since the model was recorded.
    """
    from loop.core.images import file_sha256
    from loop.errors import ModelError
    from loop.models.family import family

    key = (kind, str(path), sha256, gpu)
    if key not in _MODELS:
        if not Path(path).is_file():
            raise ModelError(f"the model file {path} is missing: run `loop train` again")
        if sha256 and file_sha256(path) != sha256:
            raise ModelError(
                f"the model file {path} changed since it was recorded (sha256 differs): "
                "train again, or restore the file"
            )
        _MODELS[key] = family(kind).load(Path(path), sha256=sha256, gpu=gpu)
        while len(_MODELS) > KEEP_MODELS:
            _MODELS.popitem(last=False)
    _MODELS.move_to_end(key)
    return _MODELS[key]


@dataclass(frozen=True)
class ModelRef:
    """A recorded model as a worker finds it (it never opens the study's database): its
    family, file, the file's recorded sha256, and the device choice."""

    kind: str
    path: str
    sha256: str
    gpu: bool | None = None

    @classmethod
    def of(cls, study, row: dict, gpu: bool | None) -> ModelRef:
        """The reference of a ``models`` row of ``study``."""
        return cls(row["kind"], str(study.resolve(row["path"])), row["sha256"], gpu)

    def load(self):
        """The model, loaded once per process (:func:`cached_model`)."""
        return cached_model(self.kind, self.path, self.sha256, self.gpu)


def run_each(
    fn: Callable,
    items: Sequence,
    *,
    engine: Engine = Engine(),
    progress=None,
    client=None,
    ordered: bool = True,
    prefetch: Callable | None = None,
    many: bool = False,
) -> Iterator[tuple[int, object]]:
    """``fn(item)`` for every item; yields ``(index, result)`` in the order of ``items``, or,
    with ``ordered=False``, as the results come (a slow item then holds nothing back and no
    result waits in memory; the caller restores the order, e.g. from its journal).

    In this process, an exception of ``fn`` propagates. On a cluster, items travel in chunks
    (:func:`chunk_size`: a task carries several, so that the per-task cost of the scheduler
    and the driver does not swamp short work); an exception of ``fn`` is that item's
    :class:`TaskFailed`; a chunk whose worker dies is run once more (Dask also moves the work
    of a worker that dies), and a chunk that dies twice is split into single items. Dask
    blames every task on a dying worker, so a single item that dies is run once more alone,
    after the others (nothing beside it to kill its worker): one bad item fails alone and the
    run goes on. ``fn`` and the items
    must pickle (module-level functions, frozen dataclasses). ``client`` runs on a cluster
    that is already up (:func:`started`), keeping its workers warm between calls.
    ``prefetch(item)`` (module-level too), if given, runs in a thread on the next item of a
    chunk while ``fn`` works on one (:func:`loop.core.readahead.read_ahead`: e.g. reading its
    files into the page cache).

    With ``many``, ``fn`` takes a list of items and returns (or yields) their results, in
    order, so that it can share work between them (a GPU's forward passes): it gets a chunk
    (on a cluster) or :data:`MAX_CHUNK` items in a row (in this process), and ``prefetch``
    runs only in this process (on the next items while ``fn`` works on a list). On a
    cluster, a list whose call raises is run again one item at a time, so that only the
    culprit fails.
    """
    if not items:
        return  # nothing to run: no cluster started for it
    if not engine.distributed:
        if many:
            yield from _in_lists(fn, items, progress, prefetch)
            return
        for i, item in enumerate(read_ahead(items, prefetch)):
            yield i, fn(item)
            if progress:
                progress(i + 1, len(items))
        return
    active = _ACTIVE.get()
    if client is None and active is not None and active[0] == engine:
        client = active[1]  # a cluster started for several calls (:func:`started`)
    if client is None:
        with _client(engine) as own:
            yield from run_each(
                fn,
                items,
                engine=engine,
                progress=progress,
                client=own,
                ordered=ordered,
                prefetch=prefetch,
                many=many,
            )
        return
    from distributed import KilledWorker, as_completed

    threads = sum(client.nthreads().values()) or 1
    size = engine.chunk or chunk_size(len(items), threads)
    window = engine.in_flight or 2 * threads
    pending = as_completed()
    futures: dict = {}  # future -> (first index, end, whether it ran with nothing beside it)
    done: dict[int, object] = {}
    queue = [(start, min(start + size, len(items))) for start in range(0, len(items), size)]
    queue.reverse()  # popped from the end: in order
    alone: list[int] = []  # single items that died beside others: run again, one at a time
    in_flight = next_out = out = 0  # next_out: the next index in order; out: yielded

    def submit():
        nonlocal in_flight
        while queue and in_flight < window or alone and not queue and not in_flight:
            by_itself = not in_flight and (len(queue) <= 1 or window == 1)  # nothing beside it
            if queue:
                start, stop = queue.pop()
            else:
                start = alone.pop()
                stop = start + 1
            chunk = items[start:stop]
            future = client.submit(_chunk, fn, chunk, prefetch, many, retries=1, pure=False)
            futures[future] = (start, stop, by_itself)
            pending.add(future)
            in_flight += 1

    submit()
    for future in pending:
        start, stop, ran_alone = futures.pop(future)
        in_flight -= 1
        try:
            outcomes = future.result()
        except Exception as exc:  # its worker died twice (or the chunk could not run)
            outcomes = None
            if stop - start > 1:  # one at a time: only the culprit fails
                queue.extend((i, i + 1) for i in reversed(range(start, stop)))
            elif not ran_alone and isinstance(exc, KilledWorker):
                alone.insert(0, start)  # maybe only beside the culprit
            else:
                done[start] = TaskFailed(f"{type(exc).__name__}: {exc}")
        future.release()
        for offset, outcome in enumerate(outcomes or ()):
            done[start + offset] = outcome
        ready = sorted(done) if not ordered else []  # as they come, or in order:
        while next_out in done and ordered:
            ready.append(next_out)
            next_out += 1
        for index in ready:
            yield index, done.pop(index)
            out += 1
            if progress:
                progress(out, len(items))
        submit()


def chunk_size(n_items: int, threads: int) -> int:
    """Items per task: enough for four tasks per worker thread, at most
    :data:`MAX_CHUNK` (a chunk that dies is run again whole).

    >>> chunk_size(1000, 4), chunk_size(10, 4), chunk_size(100, 32)
    (16, 1, 1)
    """
    return max(1, min(MAX_CHUNK, n_items // (4 * max(1, threads))))


MAX_CHUNK = 16


def _in_lists(fn: Callable, items: Sequence, progress, prefetch: Callable | None):
    """:func:`run_each` with ``many``, in this process: ``fn`` on :data:`MAX_CHUNK` items at
    a time; the next list's items read ahead while ``fn`` works on one."""
    lists = [items[start : start + MAX_CHUNK] for start in range(0, len(items), MAX_CHUNK)]
    ahead = None if prefetch is None else partial(prefetch_each, prefetch)
    done = 0
    for part in read_ahead(lists, ahead):
        for result in fn(list(part)):  # each result as it comes (``fn`` may be a generator)
            yield done, result
            done += 1
            if progress:
                progress(done, len(items))


def _chunk(
    fn: Callable, items: Sequence, prefetch: Callable | None = None, many: bool = False
) -> list:
    """``fn`` on each item of a chunk (on a worker), the next read ahead by ``prefetch``;
    an item whose call raises is its :class:`TaskFailed`, the others go on. With ``many``,
    ``fn`` on the chunk's list, or, when that raises, on each item's list of one."""
    if many:
        try:
            out = list(fn(list(items)))
            if len(out) != len(items):
                raise ValueError(f"{len(out)} results for {len(items)} items")
            return out
        except Exception as exc:  # run again one at a time: only the culprit fails
            if len(items) == 1:
                return [TaskFailed(f"{type(exc).__name__}: {exc}")]
        return [_chunk(fn, [item], None, True)[0] for item in items]
    out = []
    for item in read_ahead(items, prefetch):
        try:
            out.append(fn(item))
        except Exception as exc:
            out.append(TaskFailed(f"{type(exc).__name__}: {exc}"))
    return out


_ACTIVE: ContextVar[tuple[Engine, object] | None] = ContextVar("loop_cluster", default=None)


@contextmanager
def started(engine: Engine):
    """The engine's Dask client, started once for several :func:`run_each` calls (its
    workers stay warm: imports done, models loaded); None in this process.

    Inside the block, every :func:`run_each` on the same engine uses it, also from code that
    does not know of it (``loop run``'s rounds score on one cluster); a nested ``started`` of
    the same engine gives the same client."""
    active = _ACTIVE.get()
    if not engine.distributed:
        yield None
    elif active is not None and active[0] == engine:
        yield active[1]
    else:
        with _client(engine) as client:
            token = _ACTIVE.set((engine, client))
            try:
                yield client
            finally:
                _ACTIVE.reset(token)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextmanager
def _client(engine: Engine):
    """A Dask client: on the scheduler given, or on a local cluster of ``workers`` processes
    bound to 127.0.0.1, one thread each, torch threads shared out between them."""
    from distributed import Client, LocalCluster

    cluster, environ = None, dict(os.environ)
    try:
        if engine.scheduler:
            client = Client(engine.scheduler, timeout=f"{engine.timeout}s")
        else:
            import dask

            # Dask starts workers with one thread for OpenMP, MKL and OpenBLAS; ours share
            # the cores out (set when a worker starts: OpenBLAS cannot grow later)
            share = str(max(1, (os.cpu_count() or 1) // engine.workers))
            spawn = {
                **dask.config.get("distributed.nanny.pre-spawn-environ", {}),
                **{name: share for name in THREAD_VARIABLES},
            }
            with (
                dask.config.set({"distributed.nanny.pre-spawn-environ": spawn}),
                warnings.catch_warnings(),
            ):
                # the scheduler's own HTTP server (health, metrics) takes another port when
                # 8787 is taken (another Dask cluster, a notebook's): nothing to act on
                warnings.filterwarnings("ignore", message="Port .* is already in use")
                cluster = LocalCluster(
                    n_workers=engine.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            client = Client(cluster)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        where = engine.scheduler or f"a local cluster of {engine.workers} workers"
        raise EngineError(f"cannot start or reach the Dask cluster ({where}): {exc}") from exc
    try:
        from loop.learn.dask_plugin import TorchThreads

        client.register_plugin(TorchThreads(engine.workers if cluster is not None else 0))
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        # Dask's nannies set OMP_NUM_THREADS=1, PYTHONHASHSEED, ... in this process to spawn
        # workers: put the environment back, or later subprocesses run with one thread
        os.environ.clear()
        os.environ.update(environ)
