"""The Python SDK for the Hypereal API, as hyperlocal serves it (and as the hosted service does).

    from pathlib import Path
    from hyperlocal.client import Client

    with Client("http://127.0.0.1:8000", "ck_...") as client:
        image = client.images.generate("a sunset over the ocean", aspect_ratio="16:9")
        client.download(image.url, "sunset.png")

        accepted = client.videos.generate("sora-2-i2v", image=Path("sunset.png"), duration=5)
        job = client.jobs.wait(accepted.job_id, progress=lambda status, f: print(status, f))
        client.download(job.output_url, "sunset.mp4")

Only the wire contract is used, plus hyperlocal's extensions where marked (``jobs.list``,
``jobs.cancel``, the ``/events`` stream that ``jobs.wait`` prefers, ``account.get``), so the
same code runs against the hosted base URL. ``AsyncClient`` has the same methods, awaited.
"""

from hyperlocal.client._async_client import AsyncClient
from hyperlocal.client._async_resources import AsyncChatStream
from hyperlocal.client._calls import ProgressCallback
from hyperlocal.client._client import Client
from hyperlocal.client._errors import (
    AuthenticationError,
    GenerationFailed,
    HyperlocalError,
    InsufficientCredits,
    InvalidRequest,
    JobTimeoutError,
    NetworkError,
    NotFound,
    RateLimited,
    ServerError,
    WebhookVerificationError,
)
from hyperlocal.client._media import MediaInput
from hyperlocal.client._models import (
    Account,
    ChatChoice,
    ChatChunk,
    ChatCompletion,
    ChatMessage,
    ChatUsage,
    ImageOutput,
    ImageResult,
    Job,
    JobAccepted,
    JobPage,
    JobStatus,
    MediaResult,
    Model,
    Segment,
    Transcription,
)
from hyperlocal.client._resources import ChatStream
from hyperlocal.client._webhooks import verify_webhook

__all__ = [
    "Account",
    "AsyncChatStream",
    "AsyncClient",
    "AuthenticationError",
    "ChatChoice",
    "ChatChunk",
    "ChatCompletion",
    "ChatMessage",
    "ChatStream",
    "ChatUsage",
    "Client",
    "GenerationFailed",
    "HyperlocalError",
    "ImageOutput",
    "ImageResult",
    "InsufficientCredits",
    "InvalidRequest",
    "Job",
    "JobAccepted",
    "JobPage",
    "JobStatus",
    "JobTimeoutError",
    "MediaInput",
    "MediaResult",
    "Model",
    "NetworkError",
    "NotFound",
    "ProgressCallback",
    "RateLimited",
    "Segment",
    "ServerError",
    "Transcription",
    "WebhookVerificationError",
    "verify_webhook",
]

# Public classes and functions report this package as their home, as httpx's do, so reprs,
# tracebacks and docs point at ``hyperlocal.client`` rather than at a private module.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or (callable(_obj) and hasattr(_obj, "__code__")):
        _obj.__module__ = __name__
