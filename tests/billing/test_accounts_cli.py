"""``outputlayer accounts list|show|grant`` (issue: operators need the account ids nothing else printed)."""

from __future__ import annotations

import json

import httpx2
import pytest

from rest.cli import main
from store import Settings
from tests.billing.test_billing import bought
from tests.factories import balance
from tests.paypal_fake import FakePayPal


@pytest.fixture
def operator_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line reads the same database and blob store as the server under test."""
    monkeypatch.setenv("OUTPUTLAYER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("OUTPUTLAYER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("OUTPUTLAYER_BLOB_URL", settings.blob_url)


@pytest.mark.anyio
@pytest.mark.usefixtures("operator_env")
async def test_accounts_list_show_and_grant(
    client: httpx2.AsyncClient, auth: dict[str, str], paypal: FakePayPal, capsys: pytest.CaptureFixture[str]
) -> None:
    account_id = (await balance(client, auth))["accountId"]
    purchase_id = await bought(client, auth, paypal)
    capsys.readouterr()
    assert main(["accounts", "list"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (mine,) = [a for a in listed if a["accountId"] == account_id]
    assert (mine["planTier"], mine["creditsRemaining"]) == ("basic", 200)
    assert main(["accounts", "show", account_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["storageLimitBytes"] == 262_144_000 + 2_147_483_648
    assert [(p["purchaseId"], p["status"], p["creditsAdded"]) for p in shown["purchases"]] == [
        (purchase_id, "confirmed", 200)
    ]
    assert main(["accounts", "grant", account_id, "--credits", "5"]) == 0
    assert (await balance(client, auth))["creditsRemaining"] == 205


@pytest.mark.usefixtures("operator_env")
def test_accounts_show_of_an_unknown_account_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accounts", "show", "key_01JNOSUCHACCOUNT0000000000"]) == 1
    assert capsys.readouterr().out == ""
    assert main(["accounts", "list", "--limit", "0"]) == 1
