"""Plans and credit packs (seed 004): the numbers quota and billing arithmetic are made of."""

from __future__ import annotations

from dataclasses import dataclass

from store.settings import GLOBAL_CEILING_BYTES, Settings


@dataclass(frozen=True, slots=True)
class PlanTier:
    name: str
    uploads_per_hour: int
    max_file_size_bytes: int
    storage_limit_bytes: int


@dataclass(frozen=True, slots=True)
class Pack:
    pack_id: str
    label: str
    credits: int
    storage_bytes: int
    price_usd: str


PLAN_TIERS: dict[str, PlanTier] = {
    "free": PlanTier("free", 10, 5_242_880, 262_144_000),
    "basic": PlanTier("basic", 60, 10_485_760, 2_147_483_648),
    "pro": PlanTier("pro", 120, 26_214_400, 10_737_418_240),
    "agency": PlanTier("agency", 240, 52_428_800, 53_687_091_200),
}
TIER_ORDER = ("free", "basic", "pro", "agency")

PACKS: dict[str, Pack] = {
    "basic": Pack("basic", "Basic", 200, 2_147_483_648, "6.99"),
    "pro": Pack("pro", "Pro", 600, 10_737_418_240, "16.99"),
    "agency": Pack("agency", "Agency", 2000, 53_687_091_200, "44.99"),
}


def max_upload_bytes(settings: Settings, plan_tier: str | None) -> int:
    """The per-file limit: the plan's when enforcement is on, else the configured one; never above the ceiling."""
    if settings.plan_enforcement and plan_tier in PLAN_TIERS:
        return min(PLAN_TIERS[plan_tier].max_file_size_bytes, GLOBAL_CEILING_BYTES)
    return min(settings.max_upload_bytes, GLOBAL_CEILING_BYTES)


def uploads_per_hour(settings: Settings, plan_tier: str) -> int:
    if settings.plan_enforcement and plan_tier in PLAN_TIERS:
        return PLAN_TIERS[plan_tier].uploads_per_hour
    return settings.rate_limits.uploads_per_hour


def higher_tier(current: str, bought: str) -> str:
    return max(current, bought, key=lambda t: TIER_ORDER.index(t) if t in TIER_ORDER else -1)
