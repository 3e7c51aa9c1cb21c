"""The wire formats rendered on every request: timestamps, ids and the metadata column."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from ulid import ULID

from store.clock import iso_ms, parse_iso
from store.ids import IdFactory
from store.views import parse_metadata


def _gmtime_iso(instant_ms: int) -> str:
    """The reference rendering: the C library's calendar."""
    seconds, millis = divmod(instant_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (1000, "1970-01-01T00:00:01.000Z"),
        (_ms("2024-02-29T23:59:59.999"), "2024-02-29T23:59:59.999Z"),
        (_ms("2024-03-01T00:00:00"), "2024-03-01T00:00:00.000Z"),
        (_ms("2000-02-29T12:00:00"), "2000-02-29T12:00:00.000Z"),
        (_ms("2100-03-01T00:00:00"), "2100-03-01T00:00:00.000Z"),
        (_ms("2026-12-31T23:59:59.999"), "2026-12-31T23:59:59.999Z"),
        (_ms("9999-12-31T23:59:59.999"), "9999-12-31T23:59:59.999Z"),
    ],
)
def test_iso_ms_renders_edge_instants(instant: int, expected: str) -> None:
    assert iso_ms(instant) == expected
    assert parse_iso(expected) == instant


@pytest.mark.parametrize("instant", [-1, -86_400_001, _ms("9999-12-31T23:59:59.999") + 1, 4_102_444_800_123])
def test_iso_ms_matches_the_c_calendar_inside_and_outside_the_fast_range(instant: int) -> None:
    assert iso_ms(instant) == _gmtime_iso(instant)


def test_iso_ms_round_trips_every_millisecond_and_day_boundary_of_a_leap_year() -> None:
    start = _ms("2028-01-01T00:00:00")
    day = 86_400_000
    for instant in [start + n * day + offset for n in range(367) for offset in (0, 1, 999, day - 1)]:
        rendered = iso_ms(instant)
        assert rendered == _gmtime_iso(instant)
        assert parse_iso(rendered) == instant


def test_ids_are_ulids_of_the_current_millisecond_and_sort_in_creation_order() -> None:
    factory = IdFactory()
    before = time.time_ns() // 1_000_000
    ids = [factory.new("out") for _ in range(5000)]
    after = time.time_ns() // 1_000_000

    assert len(set(ids)) == 5000
    assert ids == sorted(ids)
    for made in (ids[0], ids[-1]):
        prefix, ulid_text = made.split("_")
        assert prefix == "out"
        parsed = ULID.from_str(ulid_text)
        assert str(parsed) == ulid_text
        assert before <= int(parsed.timestamp * 1000) <= after


def test_two_factories_draw_different_random_parts() -> None:
    first, second = IdFactory().new("req"), IdFactory().new("req")
    assert first[-16:] != second[-16:]


@pytest.mark.parametrize(
    "stored",
    [
        "{}",
        '{"a":1,"b":[true,null,1.5]}',
        '{"big":123456789012345678901234567890}',
        '{"n":-9223372036854775809,"f":1e400}',
        '{"x":NaN}',
        '{"s":"\\ud800"}',
        '{"é":"ü"}',
    ],
)
def test_metadata_parses_like_json(stored: str) -> None:
    assert parse_metadata(stored) == json.loads(stored)


def test_metadata_is_a_fresh_object_every_time() -> None:
    first = parse_metadata("{}")
    first["changed"] = True
    assert parse_metadata("{}") == {}
