"""The SDK's public names are locked here, as httpx locks its own: adding or removing one is
an API change, made on purpose, in this list and in the package's ``__all__`` together."""

from __future__ import annotations

import hyperlocal.client

EXPORTED = [
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


def test_exported_members() -> None:
    assert hyperlocal.client.__all__ == EXPORTED
    public = {name for name in dir(hyperlocal.client) if not name.startswith("_")}
    assert public == set(EXPORTED)


def test_public_classes_and_functions_live_in_the_package() -> None:
    for name in EXPORTED:
        member = getattr(hyperlocal.client, name)
        if isinstance(member, type) or (callable(member) and hasattr(member, "__code__")):
            assert member.__module__ == "hyperlocal.client", name


def test_errors_form_one_tree() -> None:
    errors = [
        getattr(hyperlocal.client, name)
        for name in EXPORTED
        if name.endswith("Error")
        or name in ("InsufficientCredits", "RateLimited", "NotFound")
        or name in ("InvalidRequest", "GenerationFailed")
    ]
    assert len(errors) == 11
    assert all(issubclass(e, hyperlocal.client.HyperlocalError) for e in errors)
