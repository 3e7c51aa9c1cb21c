"""Upload links (SPEC section 14): create one, read its state, and the keyless PUT of the bytes."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from rest.endpoint import Call, content_length, endpoint, read_json, route, single_header
from rest.responses import JSONResponse
from store import family_of, upload_links


async def create_upload_link(call: Call) -> Response:
    created = await upload_links.create(
        call.service, call.owner, single_header(call.request, "Idempotency-Key"), await read_json(call.request)
    )
    response = JSONResponse(created.body, status_code=201)
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def get_upload(call: Call) -> Response:
    return JSONResponse(await upload_links.status(call.service, call.owner, call.request.path_params["upload_id"]))


async def put_content(call: Call) -> Response:
    """The bytes, raw; whatever Content-Type the client sends (the MIME type was fixed at creation)."""
    upload = await upload_links.begin_put(call.service, call.request.path_params["token"], content_length(call))
    async with upload:
        async for chunk in call.request.stream():
            if chunk:
                await upload.write(chunk)
        result = await upload.finish()
    response = JSONResponse(result.body, status_code=201)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def upload_link_routes() -> list[Route]:
    return [
        route("/v1/uploads", POST=endpoint(create_upload_link, family=family_of("create_upload_link"))),
        route("/v1/uploads/{upload_id}", GET=endpoint(get_upload, family=family_of("upload_status"))),
        route(f"{upload_links.UPLOAD_PATH}{{token}}", PUT=endpoint(put_content, auth=False)),
    ]
