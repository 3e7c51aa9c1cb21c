"""Output routes: upload, list, read, download, delete and share (SPEC section 4)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from rest.content import content_response
from rest.endpoint import Call, content_length, endpoint, read_json, route, single_header
from rest.responses import JSONResponse
from rest.uploads import feed_upload, upload_framing
from store import CreateShareLink, StoreError, check_idempotency_key, family_of, gone_body, parse_request


async def create_output(call: Call) -> Response:
    request = call.request
    key = single_header(request, "Idempotency-Key")
    length = content_length(call)
    # The key is checked before the framing, so that a request without one hears that first.
    check_idempotency_key(key)
    framing = upload_framing(request.headers.get("content-type"), length, call.service.upload_limit(call.owner))
    session = await call.service.begin_upload(call.owner, key, min_size=framing.min_size)
    call.rate = session.rate
    async with session:
        await feed_upload(request, session, framing.wire)
        result = await session.finish()
    call.account = result.account
    response = JSONResponse(result.body, status_code=201)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def list_outputs(call: Call) -> Response:
    params = call.request.query_params
    limit_text = params.get("limit", "20")
    if not limit_text.isdigit():
        raise StoreError("invalid_request", "limit must be an integer from 1 to 100.")
    page = await call.service.list_page(
        call.owner,
        limit=int(limit_text),
        cursor=params.get("cursor") or None,
        # An empty status is not "any status": only an absent one is (the published enum has no "").
        status=params.get("status"),
        mime_type=params.get("mimeType") or None,
    )
    return Response(page.body, media_type="application/json")


async def get_output(call: Call) -> Response:
    result = await call.service.get_output(call.owner, call.request.path_params["output_id"], call.found)
    if result.gone:
        return JSONResponse(gone_body(result, call.request_id), status_code=410)
    return JSONResponse(result.body)


async def get_content(call: Call) -> Response:
    content = await call.service.open_content(call.owner, call.request.path_params["output_id"], call.found)
    return await content_response(call, content, public=False)


async def delete_output(call: Call) -> Response:
    body, call.account = await call.service.delete_output_for(call.owner, call.request.path_params["output_id"])
    return JSONResponse(body)


async def share_output(call: Call) -> Response:
    request = parse_request(CreateShareLink, await read_json(call.request), "Invalid body.")
    body = await call.service.share(call.owner, call.request.path_params["output_id"], request.expiresInSeconds)
    return JSONResponse(body)


def output_routes() -> list[Route]:
    return [
        route(
            "/v1/outputs", POST=endpoint(create_output), GET=endpoint(list_outputs, family=family_of("list_outputs"))
        ),
        route(
            "/v1/outputs/{output_id}",
            GET=endpoint(get_output, family=family_of("read_output"), reads_output=True),
            DELETE=endpoint(delete_output, family=family_of("delete_output")),
        ),
        route(
            "/v1/outputs/{output_id}/content",
            GET=endpoint(get_content, family=family_of("read_content"), reads_output=True),
        ),
        route("/v1/outputs/{output_id}/share", POST=endpoint(share_output, family=family_of("share"))),
    ]
