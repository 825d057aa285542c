"""Where per-image work runs (loop/learn/engine.py): in this process, or on a real Dask
LocalCluster of worker processes on 127.0.0.1."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from connectors.labelstudio_server import free_port
from loop.errors import EngineError, ModelError
from loop.learn.engine import Engine, TaskFailed, cached_model, run_each, started

pytestmark = pytest.mark.slow


def square(x: int) -> int:
    return x * x


def pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def dies_on_three(item: tuple[int, str]) -> int:
    """Kills its worker process for item 3 every time; for item 5 only the first time."""
    x, marker = item
    if x == 3 or (x == 5 and not Path(marker).exists()):
        Path(marker).touch()
        os._exit(1)
    return x * x


def test_in_this_process_results_come_in_order_and_errors_propagate():
    assert list(run_each(square, [3, 1, 2])) == [(0, 9), (1, 1), (2, 4)]
    with pytest.raises(ZeroDivisionError):
        list(run_each(lambda x: 1 / x, [1, 0]))


def test_a_local_cluster_gives_the_same_results_in_the_same_order():
    """...and leaves this process's environment as it was (Dask's nannies set
    OMP_NUM_THREADS=1 and more to spawn workers: later subprocesses would inherit them)."""
    environ = dict(os.environ)
    seen = []
    out = list(
        run_each(
            pid_and_square,
            list(range(12)),
            engine=Engine(workers=2, in_flight=3),
            progress=lambda d, t: seen.append((d, t)),
        )
    )
    assert [i for i, _ in out] == list(range(12))
    assert [r[1] for _, r in out] == [x * x for x in range(12)]
    assert len({r[0] for _, r in out} - {os.getpid()}) == 2  # two other processes did it
    assert seen[-1] == (12, 12)
    assert dict(os.environ) == environ


def test_a_worker_that_dies_is_replaced_and_its_task_run_again(tmp_path):
    items = [(x, str(tmp_path / f"died-{x}")) for x in range(7)]
    out = dict(run_each(dies_on_three, items, engine=Engine(workers=2, in_flight=2)))
    assert out[5] == 25  # died once, run again elsewhere
    assert isinstance(out[3], TaskFailed)  # died every time: recorded, the run went on
    assert [out[i] for i in (0, 1, 2, 4, 6)] == [0, 1, 4, 16, 36]


def test_items_queued_beside_a_killer_are_run_again_alone(tmp_path):
    """Eight tasks in flight on two workers: each time item 3 kills its worker, Dask blames
    the tasks queued on that worker too (four deaths and a task fails; before the fix,
    about one run in four lost an innocent item). Run again alone, the innocent ones
    succeed; only item 3 fails."""
    items = [(x, str(tmp_path / f"died-{x}")) for x in range(12)]
    out = dict(run_each(dies_on_three, items, engine=Engine(workers=2, chunk=1, in_flight=8)))
    assert [i for i, r in out.items() if isinstance(r, TaskFailed)] == [3]
    assert "KilledWorker" in out[3].error
    assert [out[i] for i in range(12) if i != 3] == [i * i for i in range(12) if i != 3]


def fails_on_two(x: int) -> int:
    if x == 2:
        raise ValueError("two is bad")
    return x * x


def test_chunks_keep_the_order_and_a_bad_item_fails_alone(tmp_path):
    """Three items a task: an item whose call raises is its own failure; a chunk whose worker
    dies twice is split, so only the item that kills it fails; the workers, started once,
    serve two calls."""
    engine = Engine(workers=2, chunk=3, in_flight=1)  # one task at a time: no worker death
    # marks another task (Dask counts the tasks queued on a dying worker as suspects)
    items = [(x, str(tmp_path / f"died-{x}")) for x in range(8)]
    with started(engine) as client:
        out = dict(run_each(dies_on_three, items, engine=engine, client=client))
        assert isinstance(out[3], TaskFailed)
        assert [out[i] for i in (0, 1, 2, 4, 5, 6, 7)] == [0, 1, 4, 16, 25, 36, 49]
        first = {pid for _, (pid, _) in run_each(pid_and_square, range(6), engine=engine,
                                                 client=client)}  # fmt: skip
        again = list(run_each(fails_on_two, range(7), engine=engine, client=client))
        assert [i for i, _ in again] == list(range(7))
        assert isinstance(again[2][1], TaskFailed) and "two is bad" in again[2][1].error
        assert [r for i, r in again if i != 2] == [0, 1, 9, 16, 25, 36]
        assert first <= set(client.run(os.getpid).values())  # the workers started once
    with started(Engine()) as none:
        assert none is None


def test_unordered_results_come_as_they_are_done():
    """A slow first item holds nothing back with ``ordered=False``: most others come before
    it, each index once; in order (the default) it comes first."""
    engine = Engine(workers=2, chunk=1)
    spans = [1.5] + [0.0] * 7
    with started(engine) as client:
        loose = [i for i, _ in run_each(interval, spans, engine=engine, client=client,
                                        ordered=False)]  # fmt: skip
        strict = [i for i, _ in run_each(interval, spans, engine=engine, client=client)]
    # Dask may queue one more item behind the slow one on its worker (worker saturation), so
    # the slow item need not come last; most of the others come before it
    assert sorted(loose) == list(range(8)) and loose[0] != 0 and loose.index(0) >= 4
    assert strict == list(range(8))


def page_faults_per_array() -> float:
    """Minor page faults per 2 MiB array allocated, filled and freed, 50 times over."""
    import resource

    import numpy as np

    np.ones(2**18).sum()  # the first one may fault: the heap grows
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        np.ones(2**18).sum()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50


def test_a_started_cluster_serves_every_call_inside_its_block():
    """Code that knows nothing of the cluster (``loop run``'s rounds call score) uses the
    one started around it: the same worker processes, no second start; a nested start of
    the same engine gives the same client; another engine gets a cluster of its own."""
    engine = Engine(workers=2)
    with started(engine) as client:
        workers = set(client.run(os.getpid).values())
        first = {pid for _, (pid, _) in run_each(pid_and_square, range(8), engine=engine)}
        with started(engine) as inner:
            assert inner is client
            again = {pid for _, (pid, _) in run_each(pid_and_square, range(8), engine=engine)}
        assert first | again <= workers
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            other = {pid for _, (pid, _) in run_each(pid_and_square, range(4), engine=Engine(3))}
        assert not other & workers
        # two clusters at once: the second's HTTP server takes another port, silently
        assert not [w for w in caught if "already in use" in str(w.message)]
        import loop.learn.dask_plugin as plugin

        warm = client.run(lambda: all(m in __import__("sys").modules for m in plugin.WARM))
        assert all(warm.values())  # imported as the workers started, before any task
        # malloc keeps freed arrays for reuse, as in one process: Dask's nannies set
        # MALLOC_TRIM_THRESHOLD_, which mapped each large array afresh (page faults on every
        # allocation; the network ran 4x slower per image)
        faults = client.run(page_faults_per_array)
        assert max(faults.values()) < 64, faults  # 512 pages an array without the fix


def interval(seconds: float) -> tuple[float, float]:
    import time

    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def test_every_worker_is_kept_busy():
    """The shape of the stand-in sweep (bench/scale.py), without timing anything: with 4
    workers, 4 stand-in images run at once at some point, and on average more than 2 are
    in flight. A driver that waits for each result before it submits the next, or a serial
    step between tasks, leaves one running at a time."""
    engine = Engine(workers=4)
    with started(engine) as client:
        list(run_each(interval, [0.0] * 4, engine=engine, client=client))  # warm
        spans = [r for _, r in run_each(interval, [0.4] * 24, engine=engine, client=client)]
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    busy = sum(b - a for a, b in spans)
    wall = max(b for _, b in spans) - min(a for a, _ in spans)
    assert peak == 4 and busy / wall > 2


def test_bad_engines_say_what_to_give():
    with pytest.raises(EngineError, match="chunk -1: give 0"):
        Engine(chunk=-1)
    with pytest.raises(EngineError, match="--workers 0: give 1"):
        Engine(workers=0)
    with pytest.raises(EngineError, match="with its protocol, e.g. tcp://"):
        Engine(scheduler="head-node:8786")
    nowhere = Engine(scheduler=f"tcp://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(EngineError, match="cannot start or reach the Dask cluster"):
        list(run_each(square, [1], engine=nowhere))


def test_a_model_file_is_checked_before_it_is_used(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(ModelError, match="model.pt is missing: run `loop train` again"):
        cached_model("cellpose", path, "0" * 64, False)
    path.write_bytes(b"not the recorded weights")
    with pytest.raises(ModelError, match="changed since it was recorded"):
        cached_model("cellpose", path, "0" * 64, False)


def test_local_workers_share_the_gpus_one_each():
    from loop.learn.dask_plugin import gpu_of

    assert [gpu_of(k, 4) for k in range(6)] == [0, 1, 2, 3, 0, 1]
    assert [gpu_of(str(k), 2) for k in range(3)] == [0, 1, 0]  # names may come as text
    assert gpu_of("tcp://10.0.0.5:4410", 2) == 0 and gpu_of(3, 0) is None


def mark_read(path: str) -> None:
    """A prefetch: leaves a file beside the item that was read ahead."""
    Path(path + ".ahead").touch()


def test_the_next_item_of_a_chunk_is_read_ahead(tmp_path):
    """In this process every item after the first is read ahead; on a cluster, every item
    after the first of its chunk (a worker knows only its own chunk)."""
    items = [str(tmp_path / f"in-process-{i}") for i in range(4)]
    assert [i for i, _ in run_each(square_len, items, prefetch=mark_read)] == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.glob("*.ahead")) == [
        f"in-process-{i}.ahead" for i in (1, 2, 3)
    ]
    items = [str(tmp_path / f"cluster-{i}") for i in range(6)]
    engine = Engine(workers=2, chunk=3)
    out = list(run_each(square_len, items, engine=engine, prefetch=mark_read))
    assert [r for _, r in out] == [square_len(item) for item in items]
    assert sorted(p.name for p in tmp_path.glob("cluster-*.ahead")) == [
        f"cluster-{i}.ahead" for i in (1, 2, 4, 5)
    ]


def square_len(item: str) -> int:
    return len(item) ** 2


def squares_of_a_list(items: list[int]):
    """Yields (the list's length, x * x) for each item; a list that holds 5 raises."""
    if 5 in items and len(items) > 1:
        raise ValueError("a list with 5")
    for x in items:
        if x == 5:
            raise ValueError("five")
        yield len(items), x * x


def test_many_gives_lists_in_this_process_and_the_results_in_order():
    seen, warmed = [], []
    out = list(
        run_each(
            squares_of_a_list,
            [x for x in range(40) if x != 5],
            many=True,
            progress=lambda d, t: seen.append(d),
            prefetch=warmed.append,
        )
    )
    items = [x for x in range(40) if x != 5]
    assert [r[1] for _, r in out] == [x * x for x in items]
    assert [i for i, _ in out] == list(range(39))
    assert [r[0] for _, r in out] == [16] * 32 + [7] * 7  # lists of MAX_CHUNK
    assert seen == list(range(1, 40))  # each result as it comes
    assert sorted(warmed) == items[16:]  # the next list's items, read ahead
    with pytest.raises(ValueError, match="a list with 5"):
        list(run_each(squares_of_a_list, list(range(8)), many=True))


def test_many_on_a_cluster_runs_a_failing_list_again_one_item_at_a_time():
    out = dict(run_each(squares_of_a_list, list(range(12)), engine=Engine(2, chunk=4), many=True))
    assert isinstance(out[5], TaskFailed) and "ValueError: five" in out[5].error
    assert [out[i][1] for i in range(12) if i != 5] == [i * i for i in range(12) if i != 5]
    sizes = [out[i][0] for i in range(12) if i != 5]
    assert sizes == [4] * 4 + [1] * 3 + [4] * 4  # the chunk of 5 again, one at a time
