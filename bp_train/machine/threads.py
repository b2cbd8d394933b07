"""How many threads the matrix products (BLAS) may use.

NumPy's BLAS (OpenBLAS here) starts one thread per core and keeps them spinning between products. On an
idle machine that is right; on a busy one it is the worst choice: with one of two cores taken by another
process, two BLAS threads wait on each other at every product and an epoch takes 2-3 times as long as
with one thread. So the thread count is chosen on purpose, once per command, with `threadpoolctl` (the
library scikit-learn uses for this):

    threads = the cores this process may run on (affinity, cgroup quota)
              minus the cores other processes keep busy right now (sampled from /proc/stat),
              at least 1.

It is chosen once, not changed during a run: OpenBLAS sums in a different order with a different thread
count, so the same seed reproduces the same weights only with the same thread count. `--threads N`
fixes it for one command, and the environment variable BP_TRAIN_THREADS=N for every command started
where it is set (several bp-train jobs sharing a machine, or a test suite running in two workers).
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import BPTrainError

SAMPLE_SECONDS = 0.2  # long enough to see a busy neighbour, short enough not to delay a command


@dataclass
class ThreadChoice:
    threads: int
    reason: str

    def describe(self) -> str:
        return f"{self.threads} BLAS thread{'s' if self.threads != 1 else ''} ({self.reason})"


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota if one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _cpu_times() -> dict[str, tuple[int, int]]:
    """{'cpu0': (busy, total), ...} in clock ticks since boot, from /proc/stat."""
    times = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *fields = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            values = [int(v) for v in fields[:8]]
            idle = values[3] + values[4]  # idle + iowait
            times[name] = (sum(values) - idle, sum(values))
    return times


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many of this process's cores other processes keep busy, sampled over `seconds` (None where
    /proc/stat cannot be read). This process is idle while it samples, so all the work seen is others'."""
    try:
        mine = {f"cpu{i}" for i in os.sched_getaffinity(0)}
        before = _cpu_times()
        time.sleep(seconds)
        after = _cpu_times()
    except (OSError, AttributeError, ValueError):
        return None
    busy = 0.0
    for name in mine & before.keys() & after.keys():
        d_busy, d_total = after[name][0] - before[name][0], after[name][1] - before[name][1]
        busy += d_busy / d_total if d_total > 0 else 0.0
    return busy


def choose_threads(requested: int | None = None) -> ThreadChoice:
    """`requested` threads if given; else BP_TRAIN_THREADS if set; otherwise the cores left free by other
    processes, at least 1."""
    if requested is not None:
        return ThreadChoice(requested, "--threads")
    fixed = os.environ.get("BP_TRAIN_THREADS", "").strip()
    if fixed:
        if not (fixed.isascii() and fixed.isdigit() and 1 <= int(fixed) <= 1024):
            raise BPTrainError(f"BP_TRAIN_THREADS={fixed[:20]!r}: expected a whole number of threads from 1 to 1024")
        return ThreadChoice(int(fixed), "BP_TRAIN_THREADS")
    cores = usable_cores()
    busy = busy_cores()
    if busy is None:
        return ThreadChoice(cores, f"auto: {cores} usable core(s), load unknown")
    free = max(1, min(cores, round(cores - busy)))
    return ThreadChoice(free, f"auto: {cores} usable core(s), {busy:.1f} kept busy by other processes")


_chosen: list[int] = []  # the thread counts of the blas_threads blocks we are in, innermost last


@contextmanager
def blas_threads(threads: int):
    """Limit BLAS (and OpenMP) to `threads` threads inside the block."""
    from threadpoolctl import threadpool_limits

    _chosen.append(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        _chosen.pop()


def chosen_threads() -> int | None:
    """The thread count of the innermost blas_threads block (the command's choice), or None outside one."""
    return _chosen[-1] if _chosen else None
