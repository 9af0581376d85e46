"""Google's Gemini API (the Developer API, with an API key), through the official ``google-genai``
SDK; the wire protocol is ``shared/spec/providers.md`` §4. ``call.endpoint`` is the Google
model id, and ``call.category`` picks the call:

- ``image`` / ``image_edit`` (Nano Banana: ``gemini-2.5-flash-image``,
  ``gemini-3-pro-image-preview``, ``gemini-3.1-flash-image-preview``): one ``generateContent``.
  Payload: ``prompt``, ``image`` and ``images`` (inline parts, in that order), ``aspectRatio``,
  ``imageSize``, ``output_format`` (Gemini API mode cannot set the output's type, §4.1, so a
  ``jpeg`` or ``png`` asked for is transcoded here).
- ``video`` (Veo: ``veo-3.1-fast-generate-preview``, ...): ``predictLongRunning``, the
  operation polled until done, its video downloaded through the Files API. Payload:
  ``prompt``, ``image``, ``last_frame``, ``aspect_ratio``, ``duration_seconds``,
  ``resolution``, ``negative_prompt``.
- ``audio`` (Lyria 3: ``lyria-3-pro-preview``): ``generateContent`` with ``prompt``, optional
  ``image``/``images``, and ``duration`` folded into the prompt (Lyria has no such field, §4.3).

A key may also be spelled the other way (``aspect_ratio``/``aspectRatio``, ...); other keys are
not sent. Outputs are bytes from Google's own authenticated API, never URLs. Gemini API mode
has no webhooks (Pub/Sub is Vertex-only, §4.4) and no way to cancel an operation.

This module holds ``generateContent`` and the clients; Veo is in ``_video``, the payload's
reading in ``_payload``, the answer's media in ``_outputs`` and the error mapping in ``_errors``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import ClassVar

import httpx
from google import genai
from google.genai import types

from hyperlocal.engines.base import Category
from hyperlocal.engines.providers.base import (
    FailureKind,
    ProviderCall,
    ProviderContext,
    ProviderError,
    ProviderResult,
    Watch,
    WebhookNotice,
)
from hyperlocal.engines.providers.gemini._errors import translated
from hyperlocal.engines.providers.gemini._outputs import blobs, in_format, output
from hyperlocal.engines.providers.gemini._payload import media_of, parts, text_of, with_duration
from hyperlocal.engines.providers.gemini._video import Veo

__all__ = ["GeminiProvider", "create"]

API_VERSION = "v1beta"
REQUEST_TIMEOUT_S = 600  # a 4K Nano Banana Pro image or a full Lyria song takes minutes
CONNECT_TIMEOUT_S = 10.0


class GeminiProvider:
    """The Gemini API for one key: see the module docstring for what each category sends."""

    name: ClassVar[str] = "gemini"

    def __init__(
        self,
        client: genai.Client,
        http: httpx.AsyncClient,
        unused: httpx.Client,
        context: ProviderContext,
    ) -> None:
        self._client = client
        self._http = http  # the SDK's too
        self._unused = unused
        api_root = f"{context.base_url.rstrip('/')}/{API_VERSION}"
        self._veo = Veo(client, http, api_root, context.poll_interval)

    async def run(self, call: ProviderCall, watch: Watch) -> ProviderResult:
        match call.category:
            case Category.IMAGE | Category.IMAGE_EDIT:
                return await self._image(call)
            case Category.VIDEO:
                return await self._veo.run(call, watch)
            case Category.AUDIO:
                return await self._music(call)
        raise ProviderError(FailureKind.INVALID, f"gemini: no {call.category} models")

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNotice:
        del headers, body  # Pub/Sub notifications are Vertex-only (providers.md §4.4)
        raise ProviderError(FailureKind.INVALID, "gemini: the Gemini API sends no webhooks")

    async def aclose(self) -> None:
        await self._client.aio.aclose()  # these leave alone the httpx clients we gave them
        self._client.close()
        await self._http.aclose()
        self._unused.close()

    # --- generateContent: images and music --------------------------------------------------

    async def _image(self, call: ProviderCall) -> ProviderResult:
        payload = call.payload
        size = types.ImageConfig(
            aspect_ratio=text_of(payload, "aspectRatio", "aspect_ratio"),
            image_size=text_of(payload, "imageSize", "image_size"),
        )
        config = types.GenerateContentConfig(response_modalities=["IMAGE"], image_config=size)
        asked = parts(text_of(payload, "prompt"), media_of(payload, "image", "images"))
        response = await self._generate(call.endpoint, asked, config)
        wanted = (text_of(payload, "output_format", "outputFormat") or "").lower()
        outputs = [await in_format(blob, wanted) for blob in blobs(response, "image/")]
        return ProviderResult(outputs=outputs, request_id=response.response_id)

    async def _music(self, call: ProviderCall) -> ProviderResult:
        prompt = with_duration(text_of(call.payload, "prompt"), call.payload.get("duration"))
        asked = parts(prompt, media_of(call.payload, "image", "images"))
        response = await self._generate(call.endpoint, asked, None)
        outputs = [output(blob) for blob in blobs(response, "audio/")]
        return ProviderResult(outputs=outputs, request_id=response.response_id)

    async def _generate(
        self, model: str, asked: list[types.Part], config: types.GenerateContentConfig | None
    ) -> types.GenerateContentResponse:
        contents = types.Content(role="user", parts=asked)
        with translated():
            return await self._client.aio.models.generate_content(
                model=model, contents=contents, config=config
            )


def _key_kept_home(context: ProviderContext) -> Callable[[httpx.Request], Awaitable[None]]:
    """A request hook: the key goes to the Gemini API's own origin only. A download answers
    with a redirect to Google's storage (the docs fetch it with ``curl -L``), and httpx keeps
    custom headers across hops."""
    home = httpx.URL(context.base_url)

    async def hook(request: httpx.Request) -> None:
        url = request.url
        if (url.scheme, url.host, url.port) == (home.scheme, home.host, home.port):
            request.headers["x-goog-api-key"] = context.key
        else:
            request.headers.pop("x-goog-api-key", None)

    return hook


def create(context: ProviderContext) -> GeminiProvider:
    """The SDK on httpx clients of our own: redirects followed (file downloads need them) with
    the key kept to the configured origin, no proxy from the environment, and the SDK's retries
    off (the router decides). One TLS context serves them all: the SDK would build three more,
    at a tenth of a second each."""
    tls = httpx.create_ssl_context()
    http = httpx.AsyncClient(
        verify=tls,
        follow_redirects=True,
        trust_env=False,
        timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        event_hooks={"request": [_key_kept_home(context)]},
    )
    unused = httpx.Client(verify=tls, trust_env=False)  # the SDK wants one; we call .aio only
    options = types.HttpOptions(
        base_url=context.base_url,
        api_version=API_VERSION,
        timeout=REQUEST_TIMEOUT_S * 1000,
        retry_options=types.HttpRetryOptions(attempts=1),
        httpx_client=unused,
        httpx_async_client=http,
        async_client_args={"ssl": tls},  # the context for the SDK's websockets, unused too
    )
    client = genai.Client(api_key=context.key, vertexai=False, http_options=options)
    return GeminiProvider(client, http, unused, context)
