"""Enough open files for every connection a run may hold at once.

Thousands of requests in flight need thousands of sockets; a process starts with the shell's soft
limit (often 1,024), so the run raises it towards the hard limit, and says so when even that is
too low (the windows then stop growing where connections run out, as 'timeout' back-offs).
"""

from __future__ import annotations

import logging

# Files the process needs besides its connections: Parquet parts, journals, Prefect, logs.
RESERVE = 256


Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


def ensure_open_files(connections: int, logger: Logger) -> int:
    """Raise the soft open-file limit to fit `connections` (up to the hard limit); returns it."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to raise
        return connections + RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        logger.warning(
            "open-file limit %d is below the %d this run may need (%d connections): raise the hard "
            "limit (ulimit -Hn) or set lower concurrency",
            soft,
            needed,
            connections,
        )
    return int(soft)
