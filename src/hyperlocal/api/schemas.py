"""Wire schemas: the JSON that crosses HTTP, named and shaped as the Hypereal API has it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AccountResponse",
    "ImageData",
    "ImageEditBody",
    "ImageGenerateBody",
    "ImageResponse",
    "JobAccepted",
    "JobListResponse",
    "JobStatusResponse",
    "JobUnavailable",
]


class _Open(BaseModel):
    """Bodies ignore unknown fields: real clients send several aliases at once."""

    model_config = ConfigDict(extra="allow")


class ImageGenerateBody(_Open):
    model: str | None = Field("gemini-3-1-flash-t2i", description="Image model id.")
    prompt: str | None = Field(
        None, description="What to draw.", examples=["a sunset over the ocean"]
    )
    aspect_ratio: str | None = Field(None, examples=["16:9"])
    size: str | None = Field(None, examples=["1024x1024"])
    output_format: str | None = Field(None, examples=["png"])
    image: str | None = Field(None, description="A source image URL or data URI.")
    reference_images: list[str] | None = None
    mode: str | None = Field(None, description="Accepted and ignored.")
    webhook_url: str | None = Field(None, description="If set, the request becomes a job (202).")
    retention: int | None = Field(
        None,
        ge=1,
        description="Seconds to keep the outputs: shortens the server's retention, never "
        "lengthens it (a longer value keeps them for the server's time).",
    )


class ImageEditBody(_Open):
    model: str | None = Field(None, examples=["nano-banana-edit"])
    prompt: str | None = None
    images: list[str] | str | None = Field(None, description="1-14 image URLs or data URIs.")
    aspect_ratio: str | None = None
    resolution: str | None = Field(None, examples=["1k"])
    output_format: str | None = None
    webhook_url: str | None = None
    retention: int | None = Field(
        None,
        ge=1,
        description="Seconds to keep the outputs: shortens the server's retention, never "
        "lengthens it (a longer value keeps them for the server's time).",
    )


class ImageData(BaseModel):
    url: str
    model: str


class ImageResponse(BaseModel):
    created: int
    data: list[ImageData]
    resultId: str
    creditsUsed: int


class JobAccepted(BaseModel):
    jobId: str
    status: str
    message: str
    creditsUsed: int
    pollUrl: str


class JobStatusResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    jobId: str
    status: str
    model: str
    type: str
    creditsUsed: int
    outputUrl: str | None = None
    error: str | None = None
    code: str | None = None
    progress: float | None = None
    queuePosition: int | None = None
    createdAt: int | None = None
    completedAt: int | None = None
    expiresAt: int | None = None  # when the outputs are deleted; absent: kept (so far) forever
    expired: bool | None = None  # true once they are: outputUrl is then absent
    # Beyond the hosted API, for the console: the time from submit to the end, to the
    # millisecond (createdAt and completedAt are whole seconds); how a chat's reply ended
    # (stop, length, disconnect, cancelled, error); and the inputs the job was given.
    elapsedMs: int | None = None
    finishReason: str | None = None
    input: dict[str, Any] | None = None


class JobUnavailable(BaseModel):
    """A job whose view could not be built (a stored result this server cannot show): one such
    job shows as this in a list instead of failing the whole list."""

    # Forbidding extras keeps the list's union unambiguous: a full view never matches this.
    model_config = ConfigDict(extra="forbid")

    jobId: str
    status: str
    error: str


class JobListResponse(BaseModel):
    data: list[JobStatusResponse | JobUnavailable]
    nextCursor: str | None = None


class AccountResponse(BaseModel):
    keyId: str
    keyName: str
    credits: int
    rateLimit: int
    maxRunningJobs: int
    admin: bool = Field(description="Whether this is an admin key (it may use /admin).")
    maxUploadBytes: int = Field(description="The largest input medium, once decoded.")
    maxRequestBytes: int = Field(description="The largest request body: data: URIs count here.")
