"""Input media: fetching client URLs and ``data:`` URIs safely, and checking what they hold.

``addresses`` says which IP addresses are off limits, ``guard`` enforces that at connect time
for any httpx client, ``fetcher`` fetches with size, time and redirect limits, and ``media``
checks that the bytes are the image, audio or video they claim to be.
"""

from __future__ import annotations

from hyperlocal.inputs.addresses import IPAddress, is_forbidden
from hyperlocal.inputs.fetcher import MediaFetcher
from hyperlocal.inputs.guard import (
    AddressGuardError,
    AddressPolicy,
    ForbiddenAddressError,
    GuardedTransport,
    UnresolvableHostError,
)
from hyperlocal.inputs.media import MAX_PIXELS, check_media, media_seconds

__all__ = [
    "MAX_PIXELS",
    "AddressGuardError",
    "AddressPolicy",
    "ForbiddenAddressError",
    "GuardedTransport",
    "IPAddress",
    "MediaFetcher",
    "UnresolvableHostError",
    "check_media",
    "is_forbidden",
    "media_seconds",
]
