"""Stage timers (loop/core/stages.py): where a run's time goes."""

import threading
import time

from loop.core.stages import (
    add,
    collecting,
    profile_table,
    profile_text,
    stage,
    timed,
    timed_each,
)


def test_stages_add_up_in_the_open_collection_only():
    with stage("read"):  # no collection open: nothing recorded, nothing raised
        pass
    with collecting() as outer:
        with stage("read"):
            time.sleep(0.02)
        with collecting() as inner:
            with stage("network"):
                time.sleep(0.01)
        with stage("read"):
            time.sleep(0.01)
    assert set(outer) == {"read"} and outer["read"] >= 0.03
    assert set(inner) == {"network"} and 0.01 <= inner["network"] < outer["read"]


def test_a_stage_that_raises_is_still_counted():
    with collecting() as seconds:
        try:
            with stage("read"):
                raise ValueError("bad file")
        except ValueError:
            pass
    assert "read" in seconds


def test_each_thread_collects_its_own():
    seen = {}

    def work(name):
        with collecting() as seconds:
            with stage(name):
                time.sleep(0.01)
        seen[name] = dict(seconds)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {k: set(v) for k, v in seen.items()} == {"a": {"a"}, "b": {"b"}}


def test_timed_add_and_tables():
    driver = {}
    with timed(driver, "wait"):
        time.sleep(0.01)
    with timed(driver, "wait"):
        pass
    assert set(driver) == {"wait"} and driver["wait"] >= 0.01
    total = add({"read": 1.0}, {"read": 0.5, "network": 2.0})
    assert total == {"read": 1.5, "network": 2.0}
    table = profile_table(total, images=5).splitlines()
    assert [line.split()[0] for line in table] == ["stage", "network", "read"]  # largest first
    assert table[1].split()[1:] == ["2.000", "0.400", "57.1%"]
    text = profile_text({"images": 4, "seconds": 2.0, "driver": driver, "workers": total})
    assert text.startswith("4 images in 2.0 s (2.00 images/s); the workers were busy 3.5 s")
    assert "driver (this process):" in text and "workers (summed over them):" in text
    assert profile_text({})  # an empty run still says something


def test_the_rest_of_a_block_and_the_wait_for_each_item():
    with collecting(rest="other") as seconds:
        with stage("read"):
            time.sleep(0.01)
        time.sleep(0.02)  # in no stage
    assert set(seconds) == {"read", "other"} and seconds["other"] >= 0.02

    def slow():
        for x in range(3):
            time.sleep(0.01)
            yield x

    driver = {}
    assert list(timed_each(slow(), driver, "wait")) == [0, 1, 2]
    assert set(driver) == {"wait"} and driver["wait"] >= 0.03
    assert list(timed_each([], driver, "start")) == [] and "start" in driver
