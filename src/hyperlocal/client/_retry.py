"""When a failed call is sent again, and after how long.

- **429** is always retried: the server refuses it before doing anything (nothing is charged).
  ``Retry-After`` is honoured, unless it is longer than ``max_retry_after``: a rolling-hour
  limit can ask for most of an hour, and then the caller gets ``RateLimited`` at once.
- **Other 5xx** (502, 503, 504, a 500 without a generation code) and lost connections are
  retried only for idempotent calls: GETs, cancels, and submits, which carry one
  ``Idempotency-Key`` across all their attempts so the server runs and charges them once.
  Chat completions have no idempotency on the wire, so they are not resent once sent.
- **A refused connection** (the request never left) is retried for every call.
- **A generation failure** (500 with E1001/E1002/E9999) is the job's outcome, not a glitch:
  with the same key the server would only replay it, so it is never retried.

Backoff is exponential with jitter: about ``base * 2**attempt`` seconds, capped at
``max_delay``, scaled by a random factor in [0.5, 1] so clients that failed together do not
come back together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hyperlocal.client._errors import HyperlocalError, NetworkError, RateLimited, ServerError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, error: HyperlocalError, idempotent: bool, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to raise ``error`` now."""
        if attempt >= self.max_retries or not self._retryable(error, idempotent):
            return None
        wait = error.retry_after if isinstance(error, RateLimited | ServerError) else None
        if wait is None:
            return self.backoff(attempt)
        return None if wait > self.max_retry_after else wait

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2.0**attempt) * random.uniform(0.5, 1.0)

    @staticmethod
    def _retryable(error: HyperlocalError, idempotent: bool) -> bool:
        if isinstance(error, RateLimited):
            return True
        if isinstance(error, NetworkError):
            return idempotent or not error.request_sent
        return isinstance(error, ServerError) and idempotent
