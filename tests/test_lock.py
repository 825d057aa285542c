"""The per-study writer lock: one writer at a time, a killed holder leaves nothing behind."""

import os
import signal
import subprocess
import sys
import time

import pytest

from loop.errors import StudyBusy
from loop.store.lock import LOCK_NAME, holder, study_lock

HOLD = (
    "import sys, time\n"
    "from loop.store.lock import study_lock\n"
    "with study_lock(sys.argv[1], 'push'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


def hold_in_another_process(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_one_writer_at_a_time_with_the_holders_pid(tmp_path):
    proc = hold_in_another_process(tmp_path)
    try:
        with pytest.raises(StudyBusy, match=rf"another `loop push` is running .*pid {proc.pid}"):
            with study_lock(tmp_path, "round"):
                pass
        # library functions take it too: a push while another runs stops before any work
        from loop.annotate.push import push

        class Study:
            path = tmp_path

        with pytest.raises(StudyBusy, match="another `loop push`"):
            push(Study(), None, [])
    finally:
        proc.terminate()
        proc.wait()
    with study_lock(tmp_path, "round"):  # released when its holder ended
        assert holder(tmp_path)["pid"] == os.getpid()


def test_a_killed_holder_leaves_a_stale_file_that_is_taken_over(tmp_path):
    proc = hold_in_another_process(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert holder(tmp_path)["pid"] == proc.pid  # the file is still there, unlocked
    started = time.perf_counter()
    with study_lock(tmp_path, "pull"):
        assert holder(tmp_path)["command"] == "pull"
    assert time.perf_counter() - started < 1
    assert (tmp_path / LOCK_NAME).stat().st_mode & 0o077 == 0  # private, like the rest


def test_reentrant_in_one_process(tmp_path):
    with study_lock(tmp_path, "round"):
        with study_lock(tmp_path, "push"):  # a round pushes under its own lock
            assert holder(tmp_path)["command"] == "round"
        assert holder(tmp_path)["command"] == "round"
    assert holder(tmp_path) is None  # emptied on release
