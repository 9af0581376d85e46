"""fal's status stream (``providers.md`` §1.1): ``GET …/requests/{id}/status/stream`` answers
server-sent events, each a ``data:`` line holding a status object with the same fields as a
status poll's answer; fal closes the stream after COMPLETED and sends a comment every 15 s to
keep it open.

Followed this way, a request's end is known the moment fal sends it, where polls that back off
towards ``MAX_POLL_S`` find out up to that much later; and unlike a webhook, it needs no public
URL. A stream that stops short is a :class:`Cut`: the adapter polls, and opens the stream again
unless fal refused it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from enum import Enum

import httpx
from httpx_sse import SSEError, aconnect_sse
from pydantic import ValidationError

from hyperlocal.engines.providers.fal._answers import RUNNING, Status
from hyperlocal.engines.providers.fal._errors import transient

__all__ = ["STREAM_TIMEOUT", "Cut", "streamed_status"]

# fal comments every 15 s, so a read that waits four times that is a connection gone quiet
STREAM_TIMEOUT = httpx.Timeout(30.0, connect=10.0, read=60.0)

Report = Callable[[int | None], Awaitable[None]]


class Cut(Enum):
    """A stream that ended before the request did."""

    DROPPED = "dropped"  # the connection failed, timed out or closed early, or fal answered
    #                      a 408, 429 or 5xx: worth opening again after a poll
    REFUSED = "refused"  # any other answer, or events that are not statuses: poll to the end


async def streamed_status(
    http: httpx.AsyncClient, url: str, headers: Mapping[str, str], report: Report
) -> Status | Cut:
    """The request's final status, read from its stream at ``url``, each queue position on the
    way told to ``report``; or where the stream stopped short."""
    try:
        async with aconnect_sse(
            http,
            "GET",
            url,  # without logs=1: statuses only, not every line the app logs
            headers=dict(headers),  # a copy: it adds its own
            timeout=STREAM_TIMEOUT,
        ) as source:
            if not source.response.is_success:
                return Cut.DROPPED if transient(source.response) else Cut.REFUSED
            async for event in source.aiter_sse():
                if not event.data:
                    continue
                status = Status.model_validate_json(event.data)
                if status.status not in RUNNING:
                    return status
                await report(status.queue_position)
    except (SSEError, ValidationError):  # an SSEError is also a TransportError: first
        return Cut.REFUSED
    except httpx.TransportError:
        return Cut.DROPPED
    return Cut.DROPPED
