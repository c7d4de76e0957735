"""CPython's cyclic garbage collector, tuned for the length of a run.

With CPython's default thresholds (700, 10, 10) a run pays for collections that find almost
nothing. Everything alive when the run starts (Prefect, its client and server, every import) is
never garbage, and every in-flight request's objects outlive the young generations, so full
collections keep coming and each walks all of them. Measured (benchmarks/PROFILE.md): 5,000
requests in flight for 5 s each, 20,000 requests, 18 full collections of ~560 ms each: 10 s of
the loop's 21 s of CPU, which halved its rows/s and let the server close idle connections.

While a run lasts, `tuned_collector`:
- freezes what is alive at its start, so no collection walks it again;
- collects the young generation every `YOUNG_THRESHOLD` allocations and the middle one every
  `MIDDLE_THRESHOLD` young collections: short-lived cycles (a failed call's traceback) are still
  freed within a fraction of a second;
- starts no full collection on its own; instead one runs every `full_every_s` seconds, from a
  thread, so cyclic garbage that outlived the young generations stays bounded by time.
Neither end walks what was alive before the run (~1 M objects under Prefect: ~0.2 s each time,
measured): the start collects the young generations only (a dataset scan's fresh garbage) before
freezing, and the exit collects everything the run left while the start's objects are still frozen,
then unfreezes them and restores the previous thresholds. Older garbage of the caller's is frozen
with the rest and is the caller's collector's again after the run.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FULL_EVERY_S", "MIDDLE_THRESHOLD", "YOUNG_THRESHOLD", "tuned_collector"]

YOUNG_THRESHOLD = 20_000
MIDDLE_THRESHOLD = 50
# No automatic full collection: the old generation's threshold is never reached.
_OLD_THRESHOLD = 1 << 30
FULL_EVERY_S = 60.0


@contextmanager
def tuned_collector(full_every_s: float = FULL_EVERY_S) -> Iterator[None]:
    """Run the body with the collector tuned for a long run (nested calls leave it as it is)."""
    previous = gc.get_threshold()
    tuned = (YOUNG_THRESHOLD, MIDDLE_THRESHOLD, _OLD_THRESHOLD)
    if previous == tuned or not gc.isenabled():  # already tuned by an outer run, or the user said no
        yield
        return
    gc.collect(1)
    gc.freeze()
    gc.set_threshold(*tuned)
    stop = threading.Event()
    clock = threading.Thread(target=_collect_every, args=(full_every_s, stop), name="byokflow-gc")
    clock.daemon = True
    clock.start()
    try:
        yield
    finally:
        stop.set()
        clock.join()
        gc.collect()  # the run's garbage only: the start's objects are still frozen
        gc.unfreeze()
        gc.set_threshold(*previous)


def _collect_every(seconds: float, stop: threading.Event) -> None:
    """A full collection every `seconds` until `stop` is set."""
    while not stop.wait(seconds):
        gc.collect()
