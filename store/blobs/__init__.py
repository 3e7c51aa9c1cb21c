"""Blob stores: the interface and the backends, chosen once from ``OUTPUTLAYER_BLOB_URL``."""

from __future__ import annotations

from pathlib import Path

from store.blobs.base import BlobStore, BlobWriter
from store.blobs.files import FileBlobStore

__all__ = ["BlobStore", "BlobWriter", "FileBlobStore", "open_blob_store"]


def open_blob_store(url: str) -> BlobStore:
    if url.startswith("file://"):
        return FileBlobStore(Path(url.removeprefix("file://")))
    if url.startswith("s3://"):
        from store.blobs.s3 import S3BlobStore

        return S3BlobStore.from_url(url)
    raise ValueError(f"unsupported blob URL scheme: {url.split(':', 1)[0]}")
