"""How much memory this machine has free: the bound for what a command agrees to load or train."""

from __future__ import annotations

import os


def available_memory() -> int:
    """Bytes the kernel says can be had without swapping (MemAvailable), else the physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
