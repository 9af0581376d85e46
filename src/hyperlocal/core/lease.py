"""A run's hold on a job, and what passes between the runner and ``JobLifecycle``: the lease
a claim takes (one token per claim, guarding every write of that run), the claim's outcome,
and a finished run's outputs."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from hyperlocal.store.tables import Job

__all__ = ["Claim", "ClaimOutcome", "Lease", "Outputs", "new_lease_token"]


def new_lease_token(worker: str) -> str:
    """A token for one claim of one job: the worker's id and a random part, so that two runs
    of one job in one process (a requeued job claimed again) hold different leases."""
    return f"{worker}/{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    token: str


@dataclass(frozen=True, slots=True)
class Outputs:
    """A finished job's outputs: each one's storage key, and its URL now."""

    keys: Sequence[str]
    urls: Sequence[str]


class ClaimOutcome:
    CLAIMED = "claimed"
    AT_CAP = "at_cap"  # the key is at its running-jobs cap: the job stays queued
    GONE = "gone"  # not queued any more (done, cancelled, or claimed elsewhere)


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: str
    job: Job | None = None  # the job; claimed (running under ``lease``) when CLAIMED
    lease: Lease | None = None
