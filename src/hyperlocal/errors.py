"""The domain exception tree. It knows nothing of HTTP; ``api/errors.py`` maps it.

::

    HyperlocalError
    ├── AuthError                    no key, unknown key, revoked key
    │   ├── ForbiddenError           a valid key without the right (admin routes)
    │   └── WebhookSignatureError    a provider's webhook whose signature does not verify
    ├── RequestError                 the client asked for something wrong
    │   ├── ModelRequiredError
    │   ├── UnsupportedModelError    unknown id, or wrong category for the endpoint
    │   ├── InputError               one field is invalid (E1004)
    │   │   └── MediaInputError      an input URL could not be fetched or decoded
    │   ├── BodyTooLargeError
    │   └── IdempotencyConflictError
    ├── NotFoundError
    │   ├── JobNotFoundError
    │   └── OutputExpiredError       the output was deleted when its retention ran out (410)
    ├── JobConflictError             the job is already terminal (cancel twice, say)
    ├── InsufficientCreditsError
    ├── RateLimitedError
    ├── ClientGoneError              the client left before the response began (499)
    ├── EngineUnavailableError       the model's engine is not installed on this server
    ├── ProviderUnavailableError     a provider could not be reached to check a webhook (503)
    └── GenerationError              the engine failed (E1001)
        ├── GenerationTimeoutError   (E1002)
        ├── StartDeadlineError       the job did not start by its X-Start-Deadline (E1005)
        ├── ProviderInputError       a provider refused the input as invalid (E1004, 400)
        └── UnexpectedError          (E9999)
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AuthError",
    "BodyTooLargeError",
    "ClientGoneError",
    "EngineUnavailableError",
    "ErrorCode",
    "ForbiddenError",
    "GenerationError",
    "GenerationTimeoutError",
    "HyperlocalError",
    "IdempotencyConflictError",
    "InputError",
    "InsufficientCreditsError",
    "JobConflictError",
    "JobNotFoundError",
    "MediaInputError",
    "ModelRequiredError",
    "NotFoundError",
    "OutputExpiredError",
    "ProviderInputError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RequestError",
    "StartDeadlineError",
    "TooManyStreamsError",
    "UnexpectedError",
    "UnsupportedModelError",
    "WebhookSignatureError",
]


class ErrorCode(StrEnum):
    """The ``code`` of an error body, and of a job that did not complete."""

    GENERATION_FAILED = "E1001"
    TIMEOUT = "E1002"
    INVALID_INPUT = "E1004"
    # Ours, beyond the hosted codes (E1003 is left alone: the hosted service may use it).
    START_DEADLINE = "E1005"  # not started within the submit's X-Start-Deadline
    UNEXPECTED = "E9999"
    CANCELED = "canceled"  # a job cancelled by its key (spec §6: error "canceled")


class HyperlocalError(Exception):
    """Base of every error that hyperlocal raises on purpose."""

    message: str = "Internal server error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class AuthError(HyperlocalError):
    message = "Unauthorized. Please log in or provide a valid API key."


class ForbiddenError(AuthError):
    message = "Forbidden. This route needs the admin key."


class WebhookSignatureError(AuthError):
    message = "The webhook's signature does not verify"


class RequestError(HyperlocalError):
    message = "Bad request"


class ModelRequiredError(RequestError):
    message = "Model is required"


class UnsupportedModelError(RequestError):
    def __init__(self, model: str) -> None:
        super().__init__(f"Unsupported model: {model}")
        self.model = model


class InputError(RequestError):
    """One input field is invalid; the message names the field first."""

    code = ErrorCode.INVALID_INPUT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class MediaInputError(InputError):
    """An input URL was refused, could not be fetched, or did not decode as the media claimed."""


class BodyTooLargeError(RequestError):
    def __init__(self, limit: int) -> None:
        super().__init__("Request body too large")
        self.limit = limit


class IdempotencyConflictError(RequestError):
    message = "Idempotency-Key was already used with a different request body"


class NotFoundError(HyperlocalError):
    message = "Not found"


class JobNotFoundError(NotFoundError):
    message = "Job not found"


class OutputExpiredError(NotFoundError):
    """The output existed, and was deleted when its job's retention ran out."""

    message = "Output expired"


class JobConflictError(HyperlocalError):
    """The job is already terminal: cancelling it again changes nothing (and refunds nothing)."""

    def __init__(self, status: str) -> None:
        super().__init__(f"Job already {status}")
        self.status = status


class InsufficientCreditsError(HyperlocalError):
    def __init__(self, required: int, available: int) -> None:
        super().__init__("Insufficient credits")
        self.required = required
        self.available = available


class RateLimitedError(HyperlocalError):
    def __init__(self, limit: int, reset_at: float, retry_after: int) -> None:
        super().__init__("Rate limit exceeded")
        self.limit = limit
        self.reset_at = reset_at
        self.retry_after = retry_after


class TooManyStreamsError(HyperlocalError):
    """The key already holds its limit of open SSE streams; retry once one has ended."""

    retry_after = 1

    def __init__(self, limit: int) -> None:
        super().__init__(f"Too many open streams for this key (limit {limit})")
        self.limit = limit


class ClientGoneError(HyperlocalError):
    """The client closed its connection before the response began: its work was stopped, and
    the answer (499, as nginx logs it) reaches nobody but the log."""

    message = "Client closed the request"


class EngineUnavailableError(HyperlocalError):
    def __init__(self, engine: str) -> None:
        super().__init__(f"Engine '{engine}' is not installed on this server")
        self.engine = engine


class ProviderUnavailableError(HyperlocalError):
    message = "The provider could not be reached"


class GenerationError(HyperlocalError):
    """The engine could not produce the output. Jobs record ``code`` with the message.

    ``attempts`` are the routes tried on the way (provider routes, ``engines/providers``), for
    the job's record."""

    message = "Generation failed"
    code: ErrorCode = ErrorCode.GENERATION_FAILED
    attempts: tuple[dict[str, object], ...] = ()


class GenerationTimeoutError(GenerationError):
    message = "Generation timed out"
    code = ErrorCode.TIMEOUT


class StartDeadlineError(GenerationError):
    """The job was still queued when its start deadline (``X-Start-Deadline``) passed: it
    never ran, and it is refunded."""

    message = "The start deadline passed while the job was queued"
    code = ErrorCode.START_DEADLINE


class ProviderInputError(GenerationError):
    """The provider behind the model refused the input as invalid; its own words follow."""

    message = "The provider refused the input"
    code = ErrorCode.INVALID_INPUT


class UnexpectedError(GenerationError):
    message = "Unexpected error during generation"
    code = ErrorCode.UNEXPECTED
