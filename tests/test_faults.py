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


def run(spec):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={"LOOP_CRASH_AT": spec, "PATH": ""},
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
