import subprocess
import sys

from loop.faults import CRASH_EXIT_CODE, CrashPoints

SCRIPT = """
from loop.faults import crash_points
c = crash_points()
for i in range(5):
    c.hit("other")
    c.hit("step")
    print(i, flush=True)
"""


def run(spec, **extra):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={"LOOP_CRASH_AT": spec, "PATH": "", **extra},
        capture_output=True,
        text=True,
    )


def test_crash_at_nth_hit():
    result = run("step:3")
    assert result.returncode == CRASH_EXIT_CODE
    assert result.stdout.split() == ["0", "1"]


def test_crash_at_first_hit_and_no_crash():
    assert run("step").stdout == ""
    assert run("elsewhere").stdout.split() == ["0", "1", "2", "3", "4"]


def test_explicit_spec_without_env():
    CrashPoints("").hit("step")  # an empty spec never crashes


def test_crash_once_kills_only_the_first_process_to_get_there(tmp_path):
    marker = tmp_path / "died"
    first = run("step:2", LOOP_CRASH_ONCE=str(marker))
    assert first.returncode == CRASH_EXIT_CODE and first.stdout.split() == ["0"]
    assert marker.exists()
    again = run("step:2", LOOP_CRASH_ONCE=str(marker))  # the chunk run again elsewhere
    assert again.returncode == 0 and again.stdout.split() == ["0", "1", "2", "3", "4"]
