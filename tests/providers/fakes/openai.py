"""A loopback OpenAI (providers.md §3): images, Sora 2 videos and Whisper transcriptions, with
OpenAI's paths, envelopes, statuses and headers. The adapter's tests, the SDK's tests and the
lead's end-to-end runs all drive it::

    state = FakeOpenAI(key="sk-test")
    with serve(state) as base_url:              # "http://127.0.0.1:PORT/v1" (OpenAI(base_url=))
        state.requests                          # every request received, as `Received`, in order
        state.fail_next(429, retry_after=7)     # the next request fails so (after the key check)
        state.fail_next(500, path="/v1/videos/")  # ... or the next one whose path starts so
        state.queued_polls, state.running_polls = 2, 3  # a video's polls in each status
        state.fail_videos = "the message"       # videos fail with it once they have run
        state.gate = threading.Event()          # videos stay in_progress until it is set
        state.poll_after_ms = 10                # the openai-poll-after-ms header; None: none
        state.sentences = ["Hello.", "Bye."]    # what every transcription hears
        state.videos                            # the videos by id, as `FakeVideo`

It checks ``Authorization: Bearer <key>`` and each endpoint's documented fields: a missing
``prompt``, an unknown ``model``, ``size``, ``quality``, ``output_format`` or ``seconds``, an
image or audio sent as a string rather than a file, or an audio file that is not a supported
format answers 400 with ``{"error": {"message", "type", "param", "code"}}``. Outputs are real
files: images of the asked size and format (Pillow), a small H.264 MP4 (PyAV); a transcription
lasts as long as the uploaded audio does (PyAV).
"""

from __future__ import annotations

import base64
import email.policy
import functools
import io
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tests.support import serve_in_thread

__all__ = ["FakeOpenAI", "FakeVideo", "Received", "Upload", "create_app", "serve"]

IMAGE_MODELS = {
    "gpt-image-1",
    "gpt-image-1-mini",
    "gpt-image-1.5",
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "chatgpt-image-latest",
}  # the GPT image models, which always answer base64; dall-e (URLs) is not faked
GPT_SIZES = {"1024x1024", "1536x1024", "1024x1536", "auto"}
GPT_QUALITIES = {"low", "medium", "high", "auto"}
IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
VIDEO_SECONDS = {"4", "8", "12"}
VIDEO_SIZES = {"720x1280", "1280x720", "1024x1792", "1792x1024"}
AUDIO_FORMATS = {"flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"}
LANGUAGES = {"en": "english", "fr": "french", "de": "german", "es": "spanish", "ja": "japanese"}


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived: multipart fields in ``form`` (strings) and ``files``."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        """A body field, from the JSON or the form (its first value)."""
        if self.json is not None:
            return self.json.get(name)
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class FakeVideo:
    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    created_at: int
    polls: int = 0
    status: str = "queued"
    progress: int = 0
    error: dict[str, str] | None = None
    completed_at: int | None = None
    remixed_from_video_id: str | None = None
    deleted: bool = False

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "video",
            "model": self.model,
            "status": self.status,
            "progress": self.progress,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "expires_at": self.completed_at + 3600 if self.completed_at else None,
            "error": self.error,
            "prompt": self.prompt,
            "remixed_from_video_id": self.remixed_from_video_id,
            "seconds": self.seconds,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    message: str | None
    path: str | None
    retry_after: float | None
    retry_after_ms: int | None


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self.headers = headers or {}


_DEFAULT_MESSAGES = {
    429: ("Rate limit reached for requests. Please try again later.", "requests"),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    ),
    503: ("The engine is currently overloaded, please try again later.", "server_error"),
}


@dataclass
class FakeOpenAI:
    key: str = "sk-test-fake"
    url: str = ""  # set by `serve`: the base URL with /v1
    queued_polls: int = 1
    running_polls: int = 2
    poll_after_ms: int | None = 10
    fail_videos: str | None = None
    gate: threading.Event | None = None
    sentences: list[str] = field(default_factory=lambda: ["Hello from the loopback."])
    requests: list[Received] = field(default_factory=list)
    videos: dict[str, FakeVideo] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(
        self,
        status: int,
        message: str | None = None,
        *,
        path: str | None = None,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        """Fail the next request (whose path starts with ``path``) with ``status``, OpenAI's
        envelope, and ``retry-after`` / ``retry-after-ms`` headers when given."""
        with self._lock:
            self._failures.append(_Failure(status, message, path, retry_after, retry_after_ms))

    def find(self, method: str, path: str) -> list[Received]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path)]

    def check_failures(self, path: str) -> None:
        with self._lock:
            failure = next(
                (f for f in self._failures if f.path is None or path.startswith(f.path)), None
            )
            if failure is not None:
                self._failures.remove(failure)
        if failure is not None:
            raise _scripted(failure)


def _scripted(failure: _Failure) -> ApiError:
    default, kind = _DEFAULT_MESSAGES.get(failure.status, ("Scripted failure.", "server_error"))
    headers = {}
    if failure.retry_after is not None:
        headers["retry-after"] = f"{failure.retry_after:g}"
    if failure.retry_after_ms is not None:
        headers["retry-after-ms"] = str(failure.retry_after_ms)
    code = "rate_limit_exceeded" if failure.status == 429 else None
    kind = "invalid_request_error" if failure.status in (400, 422) else kind
    return ApiError(
        failure.status, failure.message or default, kind=kind, code=code, headers=headers
    )


# --- recording, auth --------------------------------------------------------------------------


async def _received(request: Request) -> Received:
    content_type = request.headers.get("content-type", "")
    form: dict[str, list[str]] = {}
    files: dict[str, list[Upload]] = {}
    body: Any = None
    if content_type.startswith("multipart/form-data"):
        form, files = await _multipart(request)
    elif content_type.startswith("application/json") and await request.body():
        body = await request.json()
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = dict(request.query_params)
    return Received(request.method, request.url.path, query, headers, body, form, files)


async def _multipart(request: Request) -> tuple[dict[str, list[str]], dict[str, list[Upload]]]:
    """The form's fields and files, parsed with the standard library's MIME parser (the fake
    needs no python-multipart); a part with a file name is a file, as the SDK sends them."""
    header = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(header + await request.body())
    form: dict[str, list[str]] = {}
    files: dict[str, list[Upload]] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", "", header="content-disposition"))
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        if part.get_filename() is None:
            form.setdefault(name, []).append(data.decode())
        else:
            upload = Upload(part.get_filename(), part.get("content-type"), data)
            files.setdefault(name, []).append(upload)
    return form, files


def _check_key(state: FakeOpenAI, headers: dict[str, str]) -> None:
    auth = headers.get("authorization", "")
    if not auth.startswith("Bearer "):
        raise ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    given = auth.removeprefix("Bearer ")
    if given != state.key:
        masked = f"{given[:3]}{'*' * max(len(given) - 7, 0)}{given[-4:]}"
        raise ApiError(
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )


async def _admit(state: FakeOpenAI, request: Request) -> Received:
    received = await _received(request)
    state.requests.append(received)
    _check_key(state, received.headers)
    state.check_failures(received.path)
    return received


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "x-request-id": f"req_{secrets.token_hex(16)}",
        "openai-version": "2020-10-01",
        "openai-processing-ms": "3",
        **(extra or {}),
    }


def _invalid(message: str, param: str | None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def _choice(value: str, allowed: set[str], param: str) -> str:
    if value not in allowed:
        supported = ", ".join(f"'{v}'" for v in sorted(allowed))
        raise _invalid(f"Invalid value: '{value}'. Supported values are: {supported}.", param)
    return value


def _required(received: Received, name: str) -> str:
    value = received.value(name)
    if value is None or value == "":
        raise _invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    return str(value)


# --- images -----------------------------------------------------------------------------------


def _image_size(model: str, size: str) -> tuple[int, int]:
    if model == "gpt-image-2" and size not in GPT_SIZES:
        return _free_size(size)
    _choice(size, GPT_SIZES, "size")
    if size == "auto":
        return 1024, 1024
    width, height = size.split("x")
    return int(width), int(height)


def _free_size(size: str) -> tuple[int, int]:
    """gpt-image-2's arbitrary sizes: multiples of 16, aspect 1:3 to 3:1, at most 3840x2160."""
    try:
        width, height = (int(part) for part in size.split("x"))
    except ValueError:
        raise _invalid(f"Invalid size '{size}': expected WIDTHxHEIGHT.", "size") from None
    fits = width % 16 == 0 and height % 16 == 0 and max(width, height) <= 3840
    fits = fits and width * height <= 3840 * 2160 and 1 / 3 <= width / height <= 3
    if not fits:
        raise _invalid(
            f"Invalid size '{size}': sides must be multiples of 16, the aspect ratio between "
            "1:3 and 3:1, and at most 3840x2160.",
            "size",
        )
    return width, height


def _render(size: tuple[int, int], fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 120, 200)).save(buffer, format=IMAGE_FORMATS[fmt])
    return buffer.getvalue()


def _images_answer(received: Received) -> dict[str, Any]:
    model = _choice(_required(received, "model"), IMAGE_MODELS, "model")
    prompt = _required(received, "prompt")
    if len(prompt) > 32000:
        raise _invalid("Invalid 'prompt': string too long.", "prompt", "string_above_max_length")
    size_name = str(received.value("size") or "auto")
    size = _image_size(model, size_name)
    quality = _choice(str(received.value("quality") or "auto"), GPT_QUALITIES, "quality")
    fmt = _choice(
        str(received.value("output_format") or "png"), set(IMAGE_FORMATS), "output_format"
    )
    count = int(received.value("n") or 1)
    image = base64.b64encode(_render(size, fmt)).decode()
    tokens = len(prompt.split())
    return {
        "created": int(time.time()),
        "background": "opaque",
        "data": [{"b64_json": image} for _ in range(count)],
        "output_format": fmt,
        "quality": "medium" if quality == "auto" else quality,  # the quality it chose
        "size": f"{size[0]}x{size[1]}",
        "usage": {
            "input_tokens": tokens,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": tokens},
            "output_tokens": 272,
            "total_tokens": tokens + 272,
        },
    }


def _check_image_files(received: Received) -> None:
    for name in ("image", "image[]", "mask"):
        if name in received.form:
            raise _invalid(
                f"Invalid type for '{name}': expected a file, but got a string instead.",
                name,
                "invalid_type",
            )
    images = received.files.get("image", []) + received.files.get("image[]", [])
    if not images:
        raise _invalid(
            "Missing required parameter: 'image'.", "image", "missing_required_parameter"
        )
    if len(images) > 16:
        raise _invalid("Invalid 'image': at most 16 images.", "image", "array_above_max_length")
    for upload in images + received.files.get("mask", []):
        if upload.content_type not in ("image/png", "image/jpeg", "image/webp"):
            raise _invalid(
                f"Invalid file '{upload.filename}': unsupported mimetype "
                f"('{upload.content_type}'). Supported file formats are 'image/jpeg', "
                "'image/png', and 'image/webp'.",
                "image",
                "unsupported_file_mimetype",
            )


# --- videos -----------------------------------------------------------------------------------


def _video_model(model: str) -> str:
    if model in ("sora-2", "sora-2-pro") or model.startswith(("sora-2-20", "sora-2-pro-20")):
        return model
    raise _invalid(
        f"Invalid value: '{model}'. Supported values are: 'sora-2' and 'sora-2-pro'.", "model"
    )


def _check_reference(received: Received, size: str) -> None:
    if "input_reference" in received.form:
        raise _invalid(
            "Invalid type for 'input_reference': expected a file or an object.",
            "input_reference",
            "invalid_type",
        )
    uploads = received.files.get("input_reference", [])
    if not uploads:
        return
    from PIL import Image

    try:
        with Image.open(io.BytesIO(uploads[0].data)) as image:
            actual = image.size
    except OSError:
        raise _invalid("Invalid 'input_reference': not an image.", "input_reference") from None
    width, height = (int(part) for part in size.split("x"))
    if actual != (width, height):
        raise _invalid("Inpaint image must match the requested width and height", "input_reference")


def _new_video(state: FakeOpenAI, received: Received) -> FakeVideo:
    prompt = _required(received, "prompt")
    model = _video_model(str(received.value("model") or "sora-2"))
    seconds = _choice(str(received.value("seconds") or "4"), VIDEO_SECONDS, "seconds")
    size = _choice(str(received.value("size") or "720x1280"), VIDEO_SIZES, "size")
    _check_reference(received, size)
    video_id = f"video_{secrets.token_hex(12)}"
    video = FakeVideo(video_id, model, prompt, seconds, size, int(time.time()))
    state.videos[video_id] = video
    return video


def _advance(state: FakeOpenAI, video: FakeVideo) -> None:
    """One poll's worth of work: queued, then in_progress (held while the gate is shut), then
    completed or failed."""
    if video.status in ("completed", "failed"):
        return
    video.polls += 1
    running = video.polls - state.queued_polls
    if running <= 0:
        return
    held = state.gate is not None and not state.gate.is_set()
    if held or running <= state.running_polls:
        video.status = "in_progress"
        video.progress = min(99, round(100 * running / (state.running_polls + 1)))
        return
    _finish(state, video)


def _finish(state: FakeOpenAI, video: FakeVideo) -> None:
    video.completed_at = int(time.time())
    if state.fail_videos is not None:
        video.status = "failed"
        video.error = {"code": "video_generation_failed", "message": state.fail_videos}
        return
    video.status, video.progress = "completed", 100


def _video(state: FakeOpenAI, video_id: str) -> FakeVideo:
    video = state.videos.get(video_id)
    if video is None or video.deleted:
        raise ApiError(404, f"Video with id '{video_id}' not found.", param="video_id")
    return video


@functools.cache
def tiny_mp4() -> bytes:
    """One second of H.264 at 64x48, 8 frames a second."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for shade in range(8):
            pixels = np.full((48, 64, 3), (shade * 30, 80, 160), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def _content(video: FakeVideo, variant: str) -> Response:
    _choice(variant, {"video", "thumbnail", "spritesheet"}, "variant")
    if video.status != "completed":
        raise _invalid(f"Video '{video.id}' is not ready: its status is {video.status}.", None)
    if variant == "video":
        return Response(tiny_mp4(), media_type="video/mp4", headers=_headers())
    fmt = "webp" if variant == "thumbnail" else "jpeg"
    return Response(_render((64, 48), fmt), media_type=f"image/{fmt}", headers=_headers())


# --- transcriptions ---------------------------------------------------------------------------


def _audio_seconds(upload: Upload) -> float:
    import av

    extension = (upload.filename or "").rpartition(".")[2].lower()
    if extension not in AUDIO_FORMATS:
        formats = ", ".join(f"'{f}'" for f in sorted(AUDIO_FORMATS))
        raise _invalid(f"Invalid file format. Supported formats: [{formats}]", "file")
    try:
        with av.open(io.BytesIO(upload.data), mode="r") as container:
            if container.duration is not None:
                return float(container.duration / av.time_base)
            stream = container.streams.audio[0]
            return float((stream.duration or 0) * (stream.time_base or 0))
    except (av.FFmpegError, IndexError):
        raise _invalid("Audio file might be corrupted or unsupported", "file") from None


def _segments(sentences: list[str], seconds: float) -> list[dict[str, Any]]:
    share = seconds / max(len(sentences), 1)
    return [
        {
            "id": index,
            "seek": 0,
            "start": round(index * share, 2),
            "end": round((index + 1) * share, 2),
            "text": f" {text}",
            "tokens": [50364 + index],
            "temperature": 0.0,
            "avg_logprob": -0.25,
            "compression_ratio": 1.1,
            "no_speech_prob": 0.01,
        }
        for index, text in enumerate(sentences)
    ]


def _transcription(state: FakeOpenAI, received: Received) -> Response:
    if "file" in received.form or not received.files.get("file"):
        raise _invalid("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    _required(received, "model")
    fmt = _choice(
        str(received.value("response_format") or "json"),
        {"json", "text", "verbose_json"},
        "response_format",
    )
    seconds = _audio_seconds(received.files["file"][0])
    text = " ".join(state.sentences)
    usage = {"type": "duration", "seconds": max(1, round(seconds))}
    if fmt == "text":
        return PlainTextResponse(text + "\n", headers=_headers())
    if fmt == "json":
        return JSONResponse({"text": text, "usage": usage}, headers=_headers())
    language = str(received.value("language") or "en")
    body = {
        "task": "transcribe",
        "language": LANGUAGES.get(language, language),
        "duration": round(seconds, 2),
        "text": text,
        "segments": _segments(state.sentences, seconds),
        "usage": usage,
    }
    return JSONResponse(body, headers=_headers())


# --- the app ----------------------------------------------------------------------------------


def create_app(state: FakeOpenAI) -> FastAPI:  # noqa: C901 (one route each, read as a table)
    app = FastAPI()

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status, headers=_headers(exc.headers))

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> JSONResponse:
        received = await _admit(state, request)
        if received.json is None:
            raise _invalid("The request body must be JSON.", None, None)
        return JSONResponse(_images_answer(received), headers=_headers())

    @app.post("/v1/images/edits")
    async def edits(request: Request) -> JSONResponse:
        received = await _admit(state, request)
        if not received.files and not received.form:
            raise _invalid("Image edits take multipart/form-data.", None, None)
        _check_image_files(received)
        return JSONResponse(_images_answer(received), headers=_headers())

    @app.post("/v1/videos")
    async def create_video(request: Request) -> JSONResponse:
        received = await _admit(state, request)
        return JSONResponse(_new_video(state, received).wire(), headers=_headers())

    @app.get("/v1/videos/{video_id}")
    async def retrieve_video(request: Request, video_id: str) -> JSONResponse:
        await _admit(state, request)
        video = _video(state, video_id)
        _advance(state, video)
        extra = (
            {}
            if state.poll_after_ms is None
            else {"openai-poll-after-ms": str(state.poll_after_ms)}
        )
        return JSONResponse(video.wire(), headers=_headers(extra))

    @app.get("/v1/videos/{video_id}/content")
    async def video_content(request: Request, video_id: str, variant: str = "video") -> Response:
        await _admit(state, request)
        return _content(_video(state, video_id), variant)

    @app.delete("/v1/videos/{video_id}")
    async def delete_video(request: Request, video_id: str) -> JSONResponse:
        await _admit(state, request)
        _video(state, video_id).deleted = True
        body = {"id": video_id, "object": "video.deleted", "deleted": True}
        return JSONResponse(body, headers=_headers())

    @app.post("/v1/videos/{video_id}/remix")
    async def remix_video(request: Request, video_id: str) -> JSONResponse:
        received = await _admit(state, request)
        source = _video(state, video_id)
        prompt = _required(received, "prompt")
        new_id = f"video_{secrets.token_hex(12)}"
        video = FakeVideo(
            new_id, source.model, prompt, source.seconds, source.size, int(time.time())
        )
        video.remixed_from_video_id = video_id
        state.videos[new_id] = video
        return JSONResponse(video.wire(), headers=_headers())

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        return _transcription(state, await _admit(state, request))

    return app


@contextmanager
def serve(state: FakeOpenAI) -> Iterator[str]:
    """Run the fake on loopback; yield (and set ``state.url`` to) its base URL with ``/v1``."""
    with serve_in_thread(create_app(state)) as root:
        state.url = f"{root}/v1"
        yield state.url
