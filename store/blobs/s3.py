"""Blobs in any S3-compatible object store (MinIO, Cloudflare R2, SeaweedFS, AWS) through the ``minio`` SDK.

The SDK is synchronous, so every call runs in a worker thread. Writes (store/blobs/s3_writer.py) keep
a small blob's chunks and send them with one PUT on commit, and stream a larger one as a multipart
upload through one reused part buffer, so memory stays at one part whatever the size; nothing becomes
visible under the key until the upload completes. A process that dies mid-upload leaves its multipart upload open;
:meth:`S3BlobStore.delete` of the key aborts it. Timeouts are short and retries few, so a dead
backend gives a quick ``service_unavailable`` / ``upload_failed`` instead of a hung request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from store.blobs.base import CHUNK_BYTES
from store.blobs.blocking import run_blocking
from store.blobs.s3_writer import S3BlobWriter
from store.errors import StoreError, service_unavailable


@dataclass(frozen=True, slots=True)
class S3Location:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    secure: bool
    region: str | None

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.hostname or not parts.path.strip("/"):
            raise ValueError("expected s3://ACCESS:SECRET@host:port/bucket")
        query = parse_qs(parts.query)
        secure = query.get("secure", ["true"])[0].lower() not in ("false", "0", "no")
        endpoint = parts.hostname + (f":{parts.port}" if parts.port else "")
        return cls(
            endpoint=endpoint,
            access_key=unquote(parts.username or ""),
            secret_key=unquote(parts.password or ""),
            bucket=parts.path.strip("/"),
            secure=secure,
            region=query.get("region", [None])[0],
        )


def _http_client() -> Any:
    import urllib3
    from urllib3.exceptions import ReadTimeoutError

    class _Retry(urllib3.Retry):
        """One retry for a dropped keep-alive connection or a 5xx, none after a read timeout: a store
        that stopped answering is not waited for twice (it would double the time to a 503)."""

        def increment(self, *args: Any, **kwargs: Any) -> Any:
            if isinstance(kwargs.get("error"), ReadTimeoutError):
                raise kwargs["error"]
            return super().increment(*args, **kwargs)

    return urllib3.PoolManager(
        # The read timeout bounds each wait for the store's next bytes, not a whole transfer.
        timeout=urllib3.Timeout(connect=3.0, read=10.0),
        maxsize=32,
        retries=_Retry(total=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


def _unavailable(exc: Exception) -> StoreError:
    error = service_unavailable("blob store")
    error.__cause__ = exc
    return error


def _done_with(response: Any) -> None:
    # A body read to its end has already given its connection back to the pool (urllib3 does that at
    # EOF); one left unread is closed here, so its bytes are never taken for the next answer.
    response.close()
    response.release_conn()


def _transient_errors() -> tuple[type[Exception], ...]:
    import urllib3.exceptions
    from minio.error import MinioException

    return (OSError, urllib3.exceptions.HTTPError, MinioException)


class S3BlobStore:
    def __init__(self, location: S3Location) -> None:
        from minio import Minio

        self.location = location
        self.bucket = location.bucket
        self.client = Minio(
            location.endpoint,
            access_key=location.access_key,
            secret_key=location.secret_key,
            secure=location.secure,
            region=location.region,
            http_client=_http_client(),
        )
        self._errors = _transient_errors()

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        store = cls(S3Location.parse(url))
        store.ensure_bucket()
        return store

    def ensure_bucket(self) -> None:
        """Create the bucket when it is missing; a refusal stops start-up with a clear message."""
        from minio.error import S3Error

        try:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket, location=self.location.region)
                except S3Error:
                    # Another process starting at the same moment created it first
                    # (BucketAlreadyOwnedByYou); only a bucket we still cannot reach is an error.
                    if not self.client.bucket_exists(self.bucket):
                        raise
        except self._errors as exc:
            raise StoreError(
                "service_unavailable",
                f"The S3 bucket {self.bucket!r} at {self.location.endpoint} is not reachable or cannot be "
                f"created ({type(exc).__name__}).",
            ) from exc

    async def writer(self, key: str, content_type: str) -> S3BlobWriter:
        return S3BlobWriter(self.client, self.bucket, key, content_type, self._errors)

    async def read(self, key: str, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        try:
            response, chunk = await run_blocking(self._open, key, start, length)
        except self._errors as exc:
            raise _unavailable(exc) from exc
        try:
            while chunk:
                yield chunk
                if response.length_remaining == 0:
                    break  # all of the body is here: no hop just to learn that it ended
                try:
                    chunk = await run_blocking(response.read, CHUNK_BYTES)
                except self._errors as exc:
                    raise _unavailable(exc) from exc
        finally:
            _done_with(response)

    def _open(self, key: str, start: int, length: int | None) -> tuple[Any, bytes]:
        """The object's response and its first chunk, in one hop."""
        if length is None:
            response = self.client.get_object(self.bucket, key, offset=start)
        else:
            response = self.client.get_object(self.bucket, key, offset=start, length=length)
        try:
            first: bytes = response.read(CHUNK_BYTES)
        except BaseException:
            _done_with(response)
            raise
        return response, first

    async def read_small(self, key: str, start: int, length: int) -> bytes:
        try:
            return await run_blocking(self._read_range, key, start, length)
        except self._errors as exc:
            raise _unavailable(exc) from exc

    def _read_range(self, key: str, start: int, length: int) -> bytes:
        """The span whole: the GET and the read of its body in one hop."""
        response = self.client.get_object(self.bucket, key, offset=start, length=length)
        try:
            data: bytes = response.read()
            return data
        finally:
            _done_with(response)

    async def delete(self, key: str) -> None:
        await run_blocking(self.delete_sync, key)

    def delete_sync(self, key: str) -> None:
        try:
            self.client.remove_object(self.bucket, key)
            self._abort_uploads(key)
        except self._errors as exc:
            raise _unavailable(exc) from exc

    def _abort_uploads(self, key: str) -> None:
        # The partial write of a streamed blob is a multipart upload; a process that died mid-upload
        # leaves it open, holding its parts' storage forever, and only this delete (from the sweep or
        # the request that reclaims the key) still knows the key. The SDK exposes these calls only
        # under private names.
        listing = self.client._list_multipart_uploads(self.bucket, prefix=key)
        for upload in listing.uploads:
            if upload.object_name == key and upload.upload_id is not None:
                self.client._abort_multipart_upload(self.bucket, key, upload.upload_id)

    async def exists(self, key: str) -> bool:
        return await run_blocking(self._exists, key)

    def _exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise _unavailable(exc) from exc
        except self._errors as exc:
            raise _unavailable(exc) from exc
        return True

    def keys(self) -> Iterator[str]:
        try:
            for item in self.client.list_objects(self.bucket, recursive=True):
                if item.object_name is not None:
                    yield item.object_name
        except self._errors as exc:
            raise _unavailable(exc) from exc

    async def ping(self) -> None:
        try:
            await run_blocking(self.client.bucket_exists, self.bucket)
        except self._errors as exc:
            raise _unavailable(exc) from exc

    def close(self) -> None:
        return None
