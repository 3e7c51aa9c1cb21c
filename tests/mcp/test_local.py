"""The account a local process acts for (SPEC section 11): OUTPUTLAYER_API_KEY's, or a local one
created on first run and remembered in the data directory."""

from __future__ import annotations

import dataclasses
import stat

import anyio
import pytest

from store import ArtifactService, Settings, StoreError
from store.local import LOCAL_KEY_FILE, acting_account, local_account

pytestmark = pytest.mark.anyio


def accounts(service: ArtifactService) -> int:
    row = service.db.read_sync(lambda tx: tx.one("SELECT COUNT(*) AS n FROM accounts"))
    assert row is not None
    return int(row["n"])


async def test_local_account_is_created_once_and_remembered(service: ArtifactService, settings: Settings) -> None:
    found: list[str] = []

    async def start() -> None:
        found.append((await acting_account(service, settings)).id)

    # Two processes starting at once (hosts often launch a server twice) still make one account.
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(start)
        tasks.start_soon(start)
    await start()
    assert len(set(found)) == 1 and accounts(service) == 1
    key_file = settings.data_dir / LOCAL_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    account = await service.authenticate(key_file.read_text().strip())
    assert account.id == found[0] and account.free_remaining == settings.free_uploads


async def test_a_loosened_key_file_is_closed_again(service: ArtifactService, settings: Settings) -> None:
    first = await local_account(service, settings.data_dir)
    key_file = settings.data_dir / LOCAL_KEY_FILE
    key_file.chmod(0o644)
    assert (await local_account(service, settings.data_dir)).id == first.id
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_a_key_file_from_another_database_is_refused(service: ArtifactService, settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / LOCAL_KEY_FILE).write_text("ol_live_" + "1" * 64)
    with pytest.raises(StoreError) as raised:
        await local_account(service, settings.data_dir)
    assert raised.value.code == "invalid_api_key" and LOCAL_KEY_FILE in raised.value.message
    assert accounts(service) == 0


async def test_the_api_key_wins(service: ArtifactService, settings: Settings) -> None:
    registered, _ = await service.register(client="10.1.1.1")
    account = await acting_account(service, dataclasses.replace(settings, api_key=registered["apiKey"]))
    assert account.id == registered["accountId"]
    assert not (settings.data_dir / LOCAL_KEY_FILE).exists()
    with pytest.raises(StoreError) as raised:
        await acting_account(service, dataclasses.replace(settings, api_key="ol_live_" + "2" * 64))
    assert raised.value.code == "invalid_api_key" and raised.value.message.startswith("OUTPUTLAYER_API_KEY")
