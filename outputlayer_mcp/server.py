"""The MCP server: five tools and one resource template over the same :class:`ArtifactService` as REST
(SPEC section 11).

This module only translates. A tool turns its arguments into one call of :mod:`store.content_sources` (which
bundles the store's use cases with their rate limits and the rules only direct callers need) and
the answer into a result (:mod:`outputlayer_mcp.results`); every rule, code and contract comes from
the store.

The account a call acts for: over HTTP, the Bearer key's account, checked per request by the REST
app and bound to the request (:func:`bind_account`); over stdio or in memory, the account the
server was built for (``account_id``), re-read on every call as REST re-authenticates every request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from mcp import MCPError
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, InputRequiredResult, ToolAnnotations
from mcp.types import Tool as MCPTool
from pydantic import AnyUrl, ValidationError
from starlette.requests import Request
from starlette.types import Scope

from outputlayer_mcp import results
from outputlayer_mcp.results import RESOURCE_PREFIX, Where
from outputlayer_mcp.schemas import (
    ArtifactList,
    ArtifactResult,
    ContentBase64Arg,
    ContentTextArg,
    CursorArg,
    ExpiresAtArg,
    ExpiresInSecondsArg,
    IdempotencyKeyArg,
    IncludeContentArg,
    LabelArg,
    LimitArg,
    MetadataArg,
    MimeTypeArg,
    MimeTypeFilterArg,
    OptionalMimeTypeArg,
    OutputIdArg,
    PathArg,
    PublicArg,
    Sha256Arg,
    ShareResult,
    SizeBytesArg,
    StatusArg,
    UploadLinkResult,
    published_input_schema,
    published_output_schema,
)
from store import (
    LIST_DEFAULT_LIMIT,
    SERVER_NAME,
    Account,
    ArtifactService,
    StoreError,
    content_sources,
    invalid_request,
    missing_api_key,
    output_not_found,
    server_version,
    store_error_from_validation,
)

log = logging.getLogger("outputlayer.mcp")

RESOURCE_TEMPLATE = RESOURCE_PREFIX + "{output_id}"
MCP_PATH = "/mcp"
ACCOUNT_STATE_KEY = "outputlayer_account"
# The SDK injects the request context into a parameter annotated with ``Context``.
Ctx = Context[Any, Any]
ToolBody = Callable[[Account, str], Awaitable[CallToolResult]]

INSTRUCTIONS = """\
OutputLayer stores the files you produce (reports, images, data, HTML) and gives back an outputId, \
a download resource (outputlayer://outputs/{outputId}) and, when asked, a URL a person can open \
without a key. Artifacts expire: at expires_at, or after the server's default lifetime.

Every result carries an agent_contract: do its first next_action (the only one with \
recommended: true). Actions name the REST endpoint of the same operation; with these tools: \
download_content = get_artifact with include_content (or read the resource), create_share_link and \
share_public_url = share, delete_output = delete_artifact, create_new_output and \
retry_same_request = save_artifact, list_outputs = list_artifacts with the cursor, get_output = \
get_artifact. Errors are isError results with the same error codes as the REST API.

save_artifact is safe to repeat: an identical call (same content and fields) returns the first \
result instead of storing or charging twice.

Never put a large file into a tool argument: over stdio pass its path to save_artifact; otherwise \
call create_upload_link and run the curl command it returns in your shell (upload_content = that \
PUT). get_artifact of a large artifact returns a downloadUrl for curl -o. save_artifact and share \
answer compactly; get_artifact has every field."""


def bind_account(scope: Scope, account: Account) -> None:
    """Attach the authenticated account to an HTTP request on its way to ``/mcp`` (REST's auth does this)."""
    scope.setdefault("state", {})[ACCOUNT_STATE_KEY] = account


class OutputLayerMCP(MCPServer[Any]):
    """``MCPServer`` with the two seams the artifact tools need (see :meth:`call_tool`, :meth:`read_resource`)."""

    def __init__(self, service: ArtifactService, *, account_id: str | None, file_roots: Sequence[Path]) -> None:
        # MCPServer configures the root logger when it has no handler yet (e.g. in a uvicorn worker);
        # logging belongs to the process's entry point, so whatever it set is put back.
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        super().__init__(
            SERVER_NAME,
            title="OutputLayer",
            description="Artifact storage for AI agents: save, fetch, share, list and delete files.",
            instructions=INSTRUCTIONS,
            version=server_version(),
        )
        root.handlers[:] = handlers
        root.setLevel(level)
        self.service = service
        self.account_id = account_id
        self.file_roots = tuple(file_roots)

    async def acting_account(self, ctx: Ctx | None) -> Account:
        request = _http_request(ctx)
        if request is not None:
            account = request.scope.get("state", {}).get(ACCOUNT_STATE_KEY)
            if not isinstance(account, Account):
                raise missing_api_key()
            return account
        if self.account_id is None:
            raise StoreError("missing_api_key", "This server acts for no account; set OUTPUTLAYER_API_KEY.")
        return await self.service.account(self.account_id)

    async def answer(self, ctx: Ctx, where: Where, body: ToolBody) -> CallToolResult:
        """Run one tool body for the acting account; every failure becomes an ``isError`` result."""
        request_id = self.service.ids.new("req")
        try:
            account = await self.acting_account(ctx)
            return await body(account, request_id)
        except StoreError as exc:
            return results.error_result(exc, where, request_id)
        except Exception as exc:  # the tool boundary: log it, never show a stack trace
            log.error("unhandled error in %s %s (%s)", where.method, where.path, request_id, exc_info=exc)
            error = StoreError("server_error", "An unexpected error occurred. Retry after 30 seconds.")
            return results.error_result(error, where, request_id)

    async def list_tools(self) -> list[MCPTool]:
        """The tools with compact published schemas (SPEC section 11: tools/list is at most 8,000
        characters); calls are still validated against the full argument and result models."""
        return [
            tool.model_copy(
                update={
                    "input_schema": published_input_schema(tool.input_schema),
                    "output_schema": published_output_schema(),
                }
            )
            for tool in await super().list_tools()
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Arguments of the wrong type are refused by the SDK before a tool runs, as bare text. They get
        the store's code (``invalid_request``) and an error contract here, like every other mistake."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError) or name not in TOOLS:
                raise
            error = store_error_from_validation(cause) or invalid_request(f"Invalid arguments for {name}.")
            return results.error_result(error, TOOLS[name](arguments), self.service.ids.new("req"))

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        """``outputlayer://outputs/{id}``: the bytes with the artifact's own MIME type (the SDK's
        templates have one fixed type), text for text types that are UTF-8."""
        text = str(uri)
        if not text.startswith(RESOURCE_PREFIX):
            return await super().read_resource(uri, context)
        output_id = text.removeprefix(RESOURCE_PREFIX)
        where = Where("GET", f"/v1/outputs/{output_id}/content")
        try:
            if not output_id.replace("_", "").isalnum():
                raise output_not_found()
            account = await self.acting_account(context)
            content, data = await content_sources.read(self.service, account, output_id)
        except StoreError as exc:
            data_fields = {
                "uri": text,
                "error": exc.code,
                "agent_contract": results.error_envelope_contract(exc, where),
            }
            raise MCPError(
                code=INVALID_PARAMS if exc.status < 500 else INTERNAL_ERROR, message=exc.message, data=data_fields
            ) from None
        body: str | bytes = data
        if content_sources.inline_kind(content.mime_type) == "text":
            with contextlib.suppress(UnicodeDecodeError):  # not UTF-8 after all: the bytes, as a blob
                body = data.decode("utf-8")
        return [ReadResourceContents(content=body, mime_type=content.mime_type)]


def _http_request(ctx: Ctx | None) -> Request | None:
    """The HTTP request a call came in on; None over stdio and in memory."""
    if ctx is None:
        return None
    try:
        request = ctx.request_context.request
    except ValueError:  # a context made outside a request
        return None
    return request if isinstance(request, Request) else None


# The REST request each tool stands for, for the retry actions of its errors.
TOOLS: dict[str, Callable[[dict[str, Any]], Where]] = {
    "save_artifact": lambda args: Where("POST", "/v1/outputs"),
    "create_upload_link": lambda args: Where("POST", "/v1/uploads"),
    "get_artifact": lambda args: Where("GET", f"/v1/outputs/{args.get('output_id', '{outputId}')}"),
    "share": lambda args: Where("POST", f"/v1/outputs/{args.get('output_id', '{outputId}')}/share"),
    "list_artifacts": lambda args: Where("GET", _list_path(args)),
    "delete_artifact": lambda args: Where("DELETE", f"/v1/outputs/{args.get('output_id', '{outputId}')}"),
}
_LIST_QUERY = {"limit": "limit", "cursor": "cursor", "status": "status", "mime_type": "mimeType"}


def _list_path(args: dict[str, Any]) -> str:
    query = {wire: args[name] for name, wire in _LIST_QUERY.items() if args.get(name) not in (None, "")}
    return "/v1/outputs" + (f"?{urlencode(query)}" if query else "")


def build_mcp_server(
    service: ArtifactService, *, account_id: str | None = None, file_roots: Sequence[Path] = ()
) -> OutputLayerMCP:
    """The MCP server over ``service``.

    ``account_id`` is the account stdio and in-memory calls act for (HTTP calls act for their Bearer
    key's account). ``file_roots`` are the directories ``save_artifact``'s ``path`` may read from;
    empty (the HTTP server) refuses ``path``.
    """
    server = OutputLayerMCP(service, account_id=account_id, file_roots=file_roots)

    @server.tool(
        name="save_artifact",
        title="Save an artifact",
        description=(
            "Store a file: pass path (stdio), or small content as content_text/content_base64; over HTTP, use "
            "create_upload_link for files. An identical repeat is a replay, never a second charge. "
            "POST /v1/outputs."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def save_artifact(
        ctx: Ctx,
        mime_type: OptionalMimeTypeArg = None,
        content_base64: ContentBase64Arg = "",
        content_text: ContentTextArg = "",
        path: PathArg = "",
        label: LabelArg = "",
        public: PublicArg = False,
        expires_at: ExpiresAtArg = "",
        metadata: MetadataArg = None,
        idempotency_key: IdempotencyKeyArg = "",
    ) -> Annotated[CallToolResult, ArtifactResult]:
        async def body(account: Account, request_id: str) -> CallToolResult:
            fields: dict[str, Any] = {"public": public}
            if mime_type is not None:
                fields["mimeType"] = mime_type
            if label:
                fields["label"] = label
            if expires_at:
                fields["expiresAt"] = expires_at
            if metadata is not None:
                fields["metadata"] = metadata
            source = content_sources.content_source(
                content_base64=content_base64,
                content_text=content_text,
                path=path,
                roots=server.file_roots,
                limit=service.upload_limit(account),
            )
            saved = await content_sources.save(service, account, fields, source, idempotency_key or None)
            structured_client = results.reads_structured_content(ctx.protocol_version)
            return results.saved_result(saved.body, replayed=saved.replayed, structured_client=structured_client)

        return await server.answer(ctx, TOOLS["save_artifact"]({}), body)

    @server.tool(
        name="get_artifact",
        title="Get an artifact",
        description=(
            "An output's fields and contract; small content inline on request, large ones as downloadUrl "
            "(curl -o, no key). GET /v1/outputs/{id}."
        ),
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    async def get_artifact(
        ctx: Ctx, output_id: OutputIdArg, include_content: IncludeContentArg = False
    ) -> Annotated[CallToolResult, ArtifactResult]:
        async def body(account: Account, request_id: str) -> CallToolResult:
            fetched = await content_sources.fetch(service, account, output_id, include_content=include_content)
            output = fetched.output
            if output.gone:
                return results.gone_result(output, request_id)
            note = f"Content not included: {fetched.not_inline}." if fetched.not_inline else None
            return results.output_result(output.body, inline=fetched.inline, note=note, download=fetched.download)

        return await server.answer(ctx, TOOLS["get_artifact"]({"output_id": output_id}), body)

    @server.tool(
        name="share",
        title="Share an artifact",
        description=(
            "A URL a person can open without a key: the publicUrl, or a signed expiring link. "
            "POST /v1/outputs/{id}/share."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    async def share(
        ctx: Ctx, output_id: OutputIdArg, expires_in_seconds: ExpiresInSecondsArg = None
    ) -> Annotated[CallToolResult, ShareResult]:
        async def body(account: Account, request_id: str) -> CallToolResult:
            body = await content_sources.share(service, account, output_id, expires_in_seconds)
            return results.share_result(body, structured_client=results.reads_structured_content(ctx.protocol_version))

        return await server.answer(ctx, TOOLS["share"]({"output_id": output_id}), body)

    @server.tool(
        name="create_upload_link",
        title="Create an upload link",
        description=(
            "For files of any size: returns a signed URL and a curl command; run it in your shell (no key, no "
            "bytes through the model). Charged when the bytes arrive. POST /v1/uploads."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    async def create_upload_link(
        ctx: Ctx,
        mime_type: MimeTypeArg,
        label: LabelArg = "",
        public: PublicArg = False,
        expires_at: ExpiresAtArg = "",
        metadata: MetadataArg = None,
        size_bytes: SizeBytesArg = None,
        sha256: Sha256Arg = "",
        idempotency_key: IdempotencyKeyArg = "",
    ) -> Annotated[CallToolResult, UploadLinkResult]:
        async def body(account: Account, request_id: str) -> CallToolResult:
            document: dict[str, Any] = {"mimeType": mime_type, "public": public}
            optional = {"label": label, "expiresAt": expires_at, "metadata": metadata, "sha256": sha256}
            document.update({name: value for name, value in optional.items() if value not in ("", None)})
            if size_bytes is not None:
                document["sizeBytes"] = size_bytes
            created = await content_sources.create_upload_link(service, account, document, idempotency_key or None)
            return results.upload_link_result(created.body, completed=created.completed)

        return await server.answer(ctx, TOOLS["create_upload_link"]({}), body)

    @server.tool(
        name="list_artifacts",
        title="List artifacts",
        description=("Your outputs, newest first, a page at a time. GET /v1/outputs."),
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    async def list_artifacts(
        ctx: Ctx,
        limit: LimitArg = LIST_DEFAULT_LIMIT,
        cursor: CursorArg = "",
        status: StatusArg = "",
        mime_type: MimeTypeFilterArg = "",
    ) -> Annotated[CallToolResult, ArtifactList]:
        async def body(account: Account, request_id: str) -> CallToolResult:
            page = await content_sources.list_page(
                service, account, limit=limit, cursor=cursor or None, status=status or None, mime_type=mime_type or None
            )
            return results.list_result(page)

        where = TOOLS["list_artifacts"]({"limit": limit, "cursor": cursor, "status": status, "mime_type": mime_type})
        return await server.answer(ctx, where, body)

    @server.tool(
        name="delete_artifact",
        title="Delete an artifact",
        description=("Delete an output and free its storage; repeating it is harmless. DELETE /v1/outputs/{id}."),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def delete_artifact(ctx: Ctx, output_id: OutputIdArg) -> Annotated[CallToolResult, ArtifactResult]:
        async def body(account: Account, request_id: str) -> CallToolResult:
            return results.output_result(await content_sources.delete(service, account, output_id))

        return await server.answer(ctx, TOOLS["delete_artifact"]({"output_id": output_id}), body)

    @server.resource(
        RESOURCE_TEMPLATE,
        name="artifact",
        title="Artifact bytes",
        description="The bytes of one of your outputs, with its MIME type (text for UTF-8 text types).",
        mime_type="application/octet-stream",
    )
    async def artifact(output_id: str, ctx: Ctx) -> bytes:
        # Reads of this template are answered by OutputLayerMCP.read_resource, which knows each
        # artifact's MIME type; this function serves anyone who calls the template directly.
        contents = await server.read_resource(RESOURCE_PREFIX + output_id, ctx)
        assert not isinstance(contents, InputRequiredResult)
        first = next(iter(contents)).content
        return first.encode("utf-8") if isinstance(first, str) else first

    return server
