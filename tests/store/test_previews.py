"""Previews (store/previews.py): the kind per type, the bounds of a text preview, and the countdown of a link."""

from __future__ import annotations

import json

import pytest

from store import Account, ArtifactService, ManualClock, StoreError, previews
from tests.factories import register, upload


async def shared_token(service: ArtifactService, account: Account, output_id: str, seconds: int | None = None) -> str:
    link = await service.share(account, output_id, seconds)
    token: str = link["shareUrl"].rsplit("/", 1)[1]
    return token


@pytest.mark.anyio
async def test_csv_preview_shows_at_most_500_rows_and_says_so(service: ArtifactService) -> None:
    account = await register(service)
    text = "id,name\n" + "".join(f"{n},item {n}\n" for n in range(600))
    created = await upload(service, account, "csv", text.encode(), mimeType="text/csv")
    token = await shared_token(service, account, created.body["outputId"])
    preview = await previews.preview_shared(service, token)
    assert (preview.kind, len(preview.rows), preview.truncated) == ("csv", previews.PREVIEW_CSV_MAX_ROWS, True)
    assert preview.rows[0] == ["id", "name"]
    assert preview.rows[-1] == ["498", "item 498"]


@pytest.mark.anyio
async def test_a_short_csv_is_shown_whole_with_quoted_cells(service: ArtifactService) -> None:
    account = await register(service)
    created = await upload(service, account, "csv", b'a,b\n"x, y","<b>\nz</b>"\n', mimeType="text/csv", public=True)
    preview = await previews.preview_public(service, created.body["outputId"])
    assert (preview.rows, preview.truncated) == ([["a", "b"], ["x, y", "<b>\nz</b>"]], False)


@pytest.mark.anyio
async def test_text_preview_is_cut_at_the_limit_without_half_a_csv_row(service: ArtifactService) -> None:
    account = await register(service)
    row = "x" * 99 + "\n"
    text = row * (previews.PREVIEW_TEXT_MAX_BYTES // len(row) + 10)
    for mime in ("text/plain", "text/csv"):
        created = await upload(service, account, mime, text.encode(), mimeType=mime, public=True)
        preview = await previews.preview_public(service, created.body["outputId"])
        assert preview.truncated
        if mime == "text/plain":
            assert len(preview.text or "") == previews.PREVIEW_TEXT_MAX_BYTES
        else:
            assert len(preview.rows) == previews.PREVIEW_CSV_MAX_ROWS
            assert all(r == ["x" * 99] for r in preview.rows)


@pytest.mark.anyio
async def test_json_is_pretty_printed_and_broken_json_is_shown_as_sent(service: ArtifactService) -> None:
    account = await register(service)
    good = await upload(service, account, "good", b'{"a":[1,{"b":null}]}', mimeType="application/json", public=True)
    bad = await upload(service, account, "bad", b'{"a": [1,', mimeType="application/json", public=True)
    deep = await upload(service, account, "deep", b"[" * 100_000, mimeType="application/json", public=True)
    shown = [(await previews.preview_public(service, c.body["outputId"])).text for c in (good, bad, deep)]
    assert shown[0] == json.dumps({"a": [1, {"b": None}]}, indent=2)
    assert shown[1] == '{"a": [1,'
    assert shown[2] == "[" * 100_000


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mime", "kind"),
    [
        ("image/png", "image"),
        ("application/pdf", "pdf"),
        ("text/html", "html"),
        ("application/xml", "xml"),
        ("application/zip", "none"),
        ("application/octet-stream", "none"),
    ],
)
async def test_bytes_shown_by_the_browser_are_not_read_for_the_preview(
    service: ArtifactService, mime: str, kind: str
) -> None:
    account = await register(service)
    created = await upload(service, account, mime, b"<x>1</x>", mimeType=mime, public=True)
    preview = await previews.preview_public(service, created.body["outputId"])
    assert preview.kind == kind
    assert (preview.text is None) == (kind != "xml")


@pytest.mark.anyio
async def test_a_share_link_counts_down_to_its_own_end(service: ArtifactService, clock: ManualClock) -> None:
    account = await register(service)
    created = await upload(service, account, "k")
    token = await shared_token(service, account, created.body["outputId"], 3600)
    clock.advance(600)
    preview = await previews.preview_shared(service, token)
    assert preview.available_for_seconds == 3000
    assert (preview.label, preview.size_bytes, preview.sha256) == (
        None,
        created.body["sizeBytes"],
        created.body["sha256"],
    )


@pytest.mark.anyio
async def test_a_preview_fails_exactly_as_the_download_does(service: ArtifactService, clock: ManualClock) -> None:
    account = await register(service)
    created = await upload(service, account, "k")
    token = await shared_token(service, account, created.body["outputId"], 60)
    private = await upload(service, account, "p")
    clock.advance(61)
    codes = []
    for attempt in (
        previews.preview_shared(service, token),
        previews.preview_public(service, private.body["outputId"]),
        previews.preview_shared(service, token[:-1] + ("A" if token[-1] != "A" else "B")),
    ):
        with pytest.raises(StoreError) as caught:
            await attempt
        codes.append(caught.value.code)
    assert codes == ["output_expired", "output_not_found", "output_not_found"]
