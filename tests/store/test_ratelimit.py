"""Rate limits (SPEC section 8): exact rolling windows on the injected clock."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from store import ArtifactService, ManualClock, RateFamily, RateLimited, StoreError, UseCase, family_of
from store.rate_families import FAMILIES
from store.settings import RateLimits
from tests.factories import count, next_ip, register, upload, upload_error


def limits(**values: int) -> pytest.MarkDecorator:
    """Run a test with these rate limits (everything else default)."""
    label = ",".join(f"{k}={v}" for k, v in values.items())
    return pytest.mark.parametrize(
        "settings_overrides", [pytest.param({"rate_limits": RateLimits(**values)}, id=label)]
    )


async def refused(awaitable: Any) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        await awaitable
    error = caught.value
    assert (error.code, error.status, error.retryable) == ("rate_limited", 429, True)
    assert error.retry_after == error.state.reset_seconds
    return error


@pytest.mark.anyio
@limits(uploads_per_hour=3)
async def test_upload_window_allows_n_then_refuses_until_the_oldest_leaves(
    service: ArtifactService, clock: ManualClock
) -> None:
    """3 uploads in an hour pass; the 4th waits exactly until the oldest leaves the rolling window."""
    account = await register(service)
    for n in range(3):
        result = await upload(service, account, f"k{n}", f"body {n}".encode())
        assert result.replayed is False
        clock.advance(100)
    error = await refused(service.begin_upload(account, "k3"))
    assert error.state.limit == 3
    assert error.state.remaining == 0
    assert error.state.reset_seconds == 3600 - 300
    clock.advance(3299)
    assert (await refused(service.begin_upload(account, "k3"))).retry_after == 1
    clock.advance(1)
    allowed = await upload(service, account, "k3", b"body 3")
    assert allowed.replayed is False
    error = await refused(service.begin_upload(account, "k4"))
    assert error.state.reset_seconds == 100, "now the second upload is the oldest in the window"


@pytest.mark.anyio
@limits(uploads_per_hour=4)
async def test_upload_session_reports_limit_remaining_and_reset(service: ArtifactService, clock: ManualClock) -> None:
    """Each accepted upload carries RateLimit numbers: the limit, what is left, seconds until a slot frees."""
    account = await register(service)
    states = []
    for n in range(4):
        session = await service.begin_upload(account, f"k{n}")
        async with session:
            session.set_fields({"mimeType": "text/plain"})
            await session.write(b"x")
            await session.finish()
        assert session.rate is not None
        states.append((session.rate.limit, session.rate.remaining, session.rate.reset_seconds))
        clock.advance(10)
    assert states == [(4, 3, 3600), (4, 2, 3590), (4, 1, 3580), (4, 0, 3570)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("settings_overrides", "family", "limit", "window"),
    [
        pytest.param({"rate_limits": RateLimits(reads_per_hour=5)}, "reads", 5, 3600, id="reads"),
        pytest.param({"rate_limits": RateLimits(deletes_per_hour=2)}, "deletes", 2, 3600, id="deletes"),
        pytest.param({"rate_limits": RateLimits(credits_per_hour=3)}, "credits", 3, 3600, id="credits"),
        pytest.param({"rate_limits": RateLimits(discovery_per_minute=4)}, "discovery", 4, 60, id="discovery"),
    ],
)
async def test_route_family_window_is_exact(
    service: ArtifactService, clock: ManualClock, family: str, limit: int, window: int
) -> None:
    """N requests pass, N+1 is refused with the wait until the oldest leaves, then one passes again."""
    clock.advance(0)
    for n in range(limit):
        state = await service.enforce_rate(family, "subject-1")
        assert state is not None
        assert (state.limit, state.remaining) == (limit, limit - 1 - n)
        clock.advance(1)
    error = await refused(service.enforce_rate(family, "subject-1"))
    assert error.state.reset_seconds == window - limit
    other = await service.enforce_rate(family, "subject-2")
    assert other is not None and other.remaining == limit - 1, "each subject has its own window"
    clock.advance(window - limit - 0.001)
    await refused(service.enforce_rate(family, "subject-1"))
    clock.advance(0.001)
    assert (await service.enforce_rate(family, "subject-1")) is not None
    await refused(service.enforce_rate(family, "subject-1"))


@pytest.mark.anyio
@limits(registrations_per_hour=2)
async def test_registrations_are_limited_per_ip(service: ArtifactService, clock: ManualClock) -> None:
    """Registration is limited per client IP; another IP is unaffected."""
    ip = next_ip()
    await service.register(client=ip)
    await service.register(client=ip)
    error = await refused(service.register(client=ip))
    assert error.state.reset_seconds == 3600
    await service.register(client=next_ip())
    assert count(service, "accounts") == 3, "a refused registration creates no account"
    clock.advance(3600)
    await service.register(client=ip)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "settings_overrides",
    [
        pytest.param(
            {
                "rate_limits_enabled": False,
                "rate_limits": RateLimits(
                    uploads_per_hour=1,
                    reads_per_hour=1,
                    deletes_per_hour=1,
                    credits_per_hour=1,
                    registrations_per_hour=1,
                    discovery_per_minute=1,
                ),
            },
            id="rate-limits-off",
        )
    ],
)
async def test_disabled_rate_limits_refuse_nothing_and_record_nothing(service: ArtifactService) -> None:
    """With rate_limits_enabled=False every limit is ignored and no rate events are written."""
    ip = next_ip()
    accounts = [await register(service, ip) for _ in range(3)]
    for n in range(3):
        result = await upload(service, accounts[0], f"k{n}")
        assert result.replayed is False
    for family in ("reads", "deletes", "credits", "discovery"):
        for _ in range(3):
            assert await service.enforce_rate(family, "s") is None
    session = await service.begin_upload(accounts[0], "k-last")
    async with session:
        assert session.rate is None
    assert count(service, "rate_events") == 0


@pytest.mark.anyio
@limits(uploads_per_hour=2)
async def test_replays_do_not_consume_upload_budget(service: ArtifactService) -> None:
    """Replaying a completed key any number of times leaves the upload budget untouched."""
    account = await register(service)
    first = await upload(service, account, "a")
    for _ in range(5):
        again = await upload(service, account, "a")
        assert again.replayed is True
        assert again.body["outputId"] == first.body["outputId"]
    assert (await upload(service, account, "b")).replayed is False
    error = await refused(service.begin_upload(account, "c"))
    assert error.state.limit == 2
    assert (await upload(service, account, "a")).replayed is True, "a replay still answers at the limit"


@pytest.mark.anyio
@limits(uploads_per_hour=2)
async def test_in_flight_and_conflicting_requests_do_not_consume_upload_budget(service: ArtifactService) -> None:
    """A 503 in-flight answer and a 409 conflict leave the upload budget untouched."""
    account = await register(service)
    holder = await service.begin_upload(account, "a")
    async with holder:
        for _ in range(3):
            with pytest.raises(StoreError) as caught:
                await service.begin_upload(account, "a")
            assert caught.value.code == "idempotency_in_flight"
        holder.set_fields({"mimeType": "text/plain"})
        await holder.write(b"x")
        await holder.finish()
    for _ in range(3):
        assert (await upload_error(service, account, "a", b"different")).code == "idempotency_conflict"
    assert (await upload(service, account, "b")).replayed is False


@pytest.mark.anyio
@limits(uploads_per_hour=2)
async def test_upload_limits_are_per_account(service: ArtifactService) -> None:
    """One account at its limit does not limit another."""
    alice, bob = await register(service), await register(service)
    await upload(service, alice, "1")
    await upload(service, alice, "2")
    await refused(service.begin_upload(alice, "3"))
    assert (await upload(service, bob, "1")).replayed is False


@pytest.mark.anyio
@limits(uploads_per_hour=2)
async def test_rate_limited_upload_claims_nothing(service: ArtifactService, clock: ManualClock) -> None:
    """A refused upload leaves no slot behind: after the window frees, the same key is a fresh upload."""
    account = await register(service)
    await upload(service, account, "1")
    await upload(service, account, "2")
    await refused(service.begin_upload(account, "3"))
    assert count(service, "idempotency_keys", "key = ?", ("3",)) == 0
    assert (await service.account(account.id)).free_remaining == 3
    clock.advance(3600)
    fresh = await upload(service, account, "3")
    assert fresh.replayed is False
    assert fresh.account.free_remaining == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "settings_overrides",
    [pytest.param({"plan_enforcement": True, "free_uploads": 20}, id="plan-enforcement-on")],
)
async def test_plan_enforcement_applies_the_free_tier_upload_rate(service: ArtifactService) -> None:
    """With plan enforcement on, a free account may upload 10 times an hour (seed 004), not the legacy 60."""
    account = await register(service)
    for n in range(10):
        await upload(service, account, f"k{n}")
    error = await refused(service.begin_upload(account, "k10"))
    assert error.state.limit == 10


def test_every_use_case_has_one_family_and_every_family_a_use_case() -> None:
    """The table both doors ask is complete: no use case without a family, no family unused."""
    assert set(FAMILIES) == set(get_args(UseCase))
    assert {family_of(use_case) for use_case in get_args(UseCase)} == set(get_args(RateFamily))
