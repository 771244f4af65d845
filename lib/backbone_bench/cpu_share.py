"""How torch's OpenMP threads wait, chosen from what the machine has free before torch loads.

libgomp (the OpenMP runtime of torch's Linux wheels) lets a thread that waits at a barrier spin for
a while before it sleeps. Alone on the cores that is the fastest; beside other busy processes it is
the slowest: a spinning thread takes the core its partner needs, and a fine-tune that takes 15 s
alone took 3 to 5 times as long beside two busy processes, against 2 times for the fair share
(`benchmarks/contention.py`, results/benchmarks/contention.csv). Sleeping at once
(OMP_WAIT_POLICY=PASSIVE) gives the fair share under load but costs a third when alone. So the
choice is made from the machine at the start: idle cores, keep the spin; busy ones, sleep.

The runtime reads these variables once, when torch loads it, so :func:`choose` must run before the
first ``import torch`` in the process; a process that started alone and meets contention later keeps
its spin (the sweep's README says to pause it for the test suite). A variable the user set wins.
"""
from __future__ import annotations

import os
import sys
import time

_pending: list[str] = []  # the choice's line until compute starts (announce)

#: Cores that other processes must keep busy, on average over the window, for threads to sleep.
BUSY_CORES = 0.5
OVERRIDE = "OMP_WAIT_POLICY=ACTIVE or PASSIVE to override"


def busy_cores(window: float = 0.25) -> float | None:
    """Cores kept busy by other processes, from /proc/stat over ``window`` seconds while this one
    sleeps; None where the kernel does not say (not Linux)."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        return sum(ticks), ticks[3] + ticks[4]

    try:
        total0, idle0 = read()
        time.sleep(window)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / (total1 - total0))


def choose(environ=None, window: float = 0.25) -> str:
    """Set OMP_WAIT_POLICY=PASSIVE in ``environ`` (default: this process's) when other processes keep
    cores busy, and return the one line that says what was chosen and how to override it."""
    env = os.environ if environ is None else environ
    for var in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if var in env:
            return f"OpenMP: {var}={env[var]} as set in the environment"
    if "torch" in sys.modules:
        return "OpenMP: torch was loaded before the choice could be made; its threads wait as it set them"
    busy = busy_cores(window)
    if busy is not None and busy >= BUSY_CORES:  # confirmed over a longer window: a moment's blip (a shell
        busy = min(busy, busy_cores(2 * window) or 0.0)  # command, an editor saving) is not a load
    cores = os.cpu_count() or 1
    if busy is None:
        return f"OpenMP: this system does not say how busy its cores are; threads spin while they wait ({OVERRIDE})"
    if busy < BUSY_CORES:
        return (f"OpenMP: {cores - busy:.1f} of {cores} cores idle at the start, so threads spin while they wait "
                f"(fastest alone; if other jobs will share these cores, OMP_WAIT_POLICY=PASSIVE is several times "
                f"faster beside them)")
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return (f"OpenMP: other processes keep {busy:.1f} of {cores} cores busy, so threads sleep while they wait "
            f"(OMP_WAIT_POLICY=PASSIVE: about a fair share of the cores instead of a few times less; {OVERRIDE})")


def defer(line: str) -> None:
    """Keep the choice's line until compute starts (:func:`announce`), so that a command refused for
    bad input prints its error alone. The variables are set already: the choice itself is not deferred."""
    _pending[:] = [line]


def announce() -> None:
    """Print the deferred line once, where a command has checked its input and starts to compute."""
    if _pending:
        print(_pending.pop(), flush=True)
