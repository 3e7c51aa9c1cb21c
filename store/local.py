"""The account a single-user local process acts for (the stdio MCP server, ``outputlayer mcp``):
the one of ``OUTPUTLAYER_API_KEY``, or else a local account created on first run and remembered in
the data directory. Its key is kept there in a file of mode 0600, because the database holds only
the key's digest and authenticating needs the key itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from pathlib import Path

import anyio

from store.errors import StoreError
from store.service import Account, ArtifactService
from store.settings import Settings

LOCAL_KEY_FILE = "local-api-key"
LOCAL_CLIENT = "local"

log = logging.getLogger("outputlayer.local")


async def acting_account(service: ArtifactService, settings: Settings) -> Account:
    """The account a local process acts for (see the module docstring)."""
    if settings.api_key:
        try:
            return await service.authenticate(settings.api_key)
        except StoreError as exc:
            raise StoreError(exc.code, f"OUTPUTLAYER_API_KEY: {exc.message}") from None
    return await local_account(service, settings.data_dir)


async def local_account(service: ArtifactService, data_dir: Path) -> Account:
    """The data directory's local account, created (once, even with racing processes) on first use."""
    key_path = data_dir / LOCAL_KEY_FILE
    lock_fd = await anyio.to_thread.run_sync(_lock, data_dir)
    try:
        known = await anyio.to_thread.run_sync(_read_key, key_path)
        if known is not None:
            try:
                return await service.authenticate(known)
            except StoreError:
                raise StoreError(
                    "invalid_api_key",
                    f"The local key in {key_path} is not known to this database. Delete the file to create a new "
                    "local account, or set OUTPUTLAYER_API_KEY.",
                ) from None
        body, _ = await service.register(client=LOCAL_CLIENT)
        await anyio.to_thread.run_sync(_write_key, key_path, str(body["apiKey"]))
        log.info("created local account %s (key in %s)", body["accountId"], key_path)
        return await service.account(str(body["accountId"]))
    finally:
        _unlock(lock_fd)


def _lock(data_dir: Path) -> int:
    """Hold the data directory's lock: another process may be creating the account right now."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / f"{LOCAL_KEY_FILE}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _read_key(key_path: Path) -> str | None:
    if not key_path.exists():
        return None
    # The file holds a credential: keep it readable by its owner only, whatever touched it since.
    if stat.S_IMODE(key_path.stat().st_mode) & 0o077:
        key_path.chmod(0o600)
    return key_path.read_text("ascii").strip()


def _write_key(key_path: Path, api_key: str) -> None:
    # Created with mode 0600 from the start (O_EXCL: never over an existing file).
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(api_key + "\n")
