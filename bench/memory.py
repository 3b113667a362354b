"""Peak memory of the current process, as the benchmarks report it."""

from __future__ import annotations

import resource
import sys


def peak_rss_mib() -> float:
    """This process's own peak resident set size in MiB.

    Linux's VmHWM belongs to the process image; ru_maxrss survives exec, so a benchmark child
    started from a large parent would report the parent's size instead of its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def children_peak_rss_mib() -> float:
    """The largest peak RSS among this process's finished children (worker processes), MiB."""
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
