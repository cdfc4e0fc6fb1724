"""The one retry policy of compare-and-set loops: how many attempts, and the pause between two.

A writer that read a version and found it changed when it wrote reads again and retries, at most
ATTEMPTS times (then TooMuchContention). Between two attempts it pauses a random while, longer
as the attempts go on (up to 20 ms), so that writers that met once do not meet again in step.

    for attempt in range(retry.ATTEMPTS):
        ...  # read, change, write if still the version read: return
        retry.pause(attempt)
    raise TooMuchContention(path)

Pure: stdlib only.
"""

from __future__ import annotations

import random
import time
from typing import Final

ATTEMPTS: Final = 100
PAUSE_STEP_S: Final = 0.001  # the longest pause grows by this much with each attempt ...
MAX_PAUSE_STEPS: Final = 20  # ... up to this many steps (20 ms)


def pause_s(attempt: int) -> float:
    """How long to pause after the failed attempt number `attempt` (from 0): a random while
    between 0 and (attempt + 1) ms, at most 20 ms."""
    return random.uniform(0, PAUSE_STEP_S * min(attempt + 1, MAX_PAUSE_STEPS))


def pause(attempt: int) -> None:
    """Sleep pause_s(attempt) seconds: the pause between attempt `attempt` and the next."""
    time.sleep(pause_s(attempt))
