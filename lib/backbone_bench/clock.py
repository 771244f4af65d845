"""Wall-clock time less the time the process spent stopped (SIGSTOP while the tests need the cores):
what records report as seconds (training, features, a run's total), so a paused sweep's records
say what the run took, not how long it waited.

A stopped process cannot see the signal, so a daemon thread ticks every half second and counts
any gap longer than ``GAP`` seconds as a pause: what is left is the time the run really took.
"""
from __future__ import annotations

import threading
import time

TICK, GAP = 0.5, 3.0


class PauseClock:
    def __init__(self):
        self.paused = 0.0
        self._last = time.monotonic()
        threading.Thread(target=self._tick, daemon=True, name="pause-clock").start()

    def _tick(self) -> None:
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            if now - self._last > GAP:
                self.paused += now - self._last - TICK
            self._last = now

    def now(self) -> tuple[float, float]:
        """(monotonic now, paused seconds so far): the difference of two is active time."""
        return time.monotonic(), self.paused


_CLOCK: dict = {}


def clock() -> PauseClock:
    if "clock" not in _CLOCK:
        _CLOCK["clock"] = PauseClock()
    return _CLOCK["clock"]


def active_since(mark: tuple[float, float]) -> tuple[float, float]:
    """(active seconds, paused seconds) since ``mark`` (a ``clock().now()``)."""
    now, paused = clock().now()
    return now - mark[0] - (paused - mark[1]), paused - mark[1]


class Stopwatch:
    """Active seconds since it was started: wall time less the pauses."""

    def __init__(self):
        self.mark = clock().now()

    def seconds(self) -> float:
        return active_since(self.mark)[0]
