"""Outputs and job inputs in S3-compatible object storage (AWS S3, MinIO, R2, Ceph...).

``HYPERLOCAL_STORAGE_URL=s3://bucket/prefix``. boto3 is synchronous, so every call runs in a
worker thread; one boto3 client is shared, which boto3 documents as thread-safe.

URLs are either public (``<s3_public_base_url>/<object key>``, for a public bucket or a CDN in
front of it) or presigned GETs that expire after ``s3_presign_seconds``. Jobs keep the object
keys, and the URL is signed again each time a client reads the job, so a presigned URL is
always valid for ``s3_presign_seconds`` from the moment it was shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from hyperlocal.settings import Settings
from hyperlocal.storage.base import STAGING, StoredFile

__all__ = ["S3Storage", "open_s3_storage"]

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3Storage:
    """The ``Storage`` interface over one bucket, under an optional key prefix."""

    def __init__(
        self,
        client: Any,  # a boto3 S3 client; boto3 ships no type information
        bucket: str,
        prefix: str = "",
        *,
        public_base_url: str | None = None,
        presign_seconds: int = 3600,
    ) -> None:
        self._client, self.bucket = client, bucket
        self.prefix = prefix.strip("/")
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.presign_seconds = presign_seconds

    def object_key(self, key: str) -> str:
        clean = PurePosixPath(key)
        if not key or clean.is_absolute() or ".." in clean.parts:
            raise ValueError(f"unsafe storage key: {key!r}")
        return f"{self.prefix}/{clean}" if self.prefix else str(clean)

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        name = self.object_key(key)
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self.bucket,
            Key=name,
            Body=data,
            ContentType=content_type,
        )
        return await self.url(key)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, self.object_key(key))

    def _read(self, name: str) -> bytes:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise FileNotFoundError(name) from exc
            raise
        body: bytes = response["Body"].read()
        return body

    def staging_key(self, key: str, run: str) -> str:
        return f"{STAGING}{run}/{key}"

    async def publish(self, staged: str, key: str) -> None:
        source, target = self.object_key(staged), self.object_key(key)
        await asyncio.to_thread(
            self._client.copy_object,
            Bucket=self.bucket,
            Key=target,
            CopySource={"Bucket": self.bucket, "Key": source},
        )
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=source)

    async def delete(self, key: str) -> None:
        name = self.object_key(key)
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=name)

    async def url(self, key: str) -> str:
        """The URL a client fetches the object at: public, or presigned (a local computation)."""
        name = self.object_key(key)
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(name)}"
        url: str = await asyncio.to_thread(
            self._client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": name},
            ExpiresIn=self.presign_seconds,
        )
        return url

    async def files(self, prefix: str = "") -> AsyncIterator[StoredFile]:
        """One page (up to 1,000 objects) listed at a time, in a worker thread."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._root() + prefix
        )
        iterator = iter(pages)
        while (page := await asyncio.to_thread(next, iterator, None)) is not None:
            for item in page.get("Contents", ()):
                key = item["Key"].removeprefix(self._root())
                yield StoredFile(key, int(item["Size"]), item["LastModified"].timestamp())

    def _root(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)


def open_s3_storage(settings: Settings, bucket: str, prefix: str) -> S3Storage:
    """Storage for ``s3://<bucket>/<prefix>``, with the ``s3_*`` settings."""
    if not bucket:
        raise ValueError("an s3:// storage URL needs a bucket: s3://bucket/prefix")
    return S3Storage(
        _client(settings),
        bucket,
        prefix,
        public_base_url=settings.s3_public_base_url,
        presign_seconds=settings.s3_presign_seconds,
    )


def _client(settings: Settings) -> Any:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    # Path-style addressing for custom endpoints: MinIO, moto and most self-hosted servers
    # serve buckets under the path, not as subdomains.
    style = "path" if settings.s3_endpoint_url else "auto"
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=_secret(settings.s3_access_key_id),
        aws_secret_access_key=_secret(settings.s3_secret_access_key),
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
