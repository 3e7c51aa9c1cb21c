"""rest/coalescing.py over a real socket pair: the writes of one loop step leave together at its
end, large ones at once, and nothing is lost on close."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from rest.coalescing import FLUSH_BYTES, CoalescingTransport

pytestmark = pytest.mark.anyio


@dataclass
class Pair:
    transport: CoalescingTransport
    peer: socket.socket

    def received_now(self) -> bytes:
        """What the peer can read without waiting (b"" when nothing has arrived)."""
        try:
            return self.peer.recv(1 << 20)
        except BlockingIOError:
            return b""

    async def received(self, size: int) -> bytes:
        loop = asyncio.get_running_loop()
        data = b""
        async with asyncio.timeout(30):
            while len(data) < size:
                chunk = await loop.sock_recv(self.peer, size - len(data))
                if not chunk:
                    break
                data += chunk
        return data


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    yield Pair(CoalescingTransport(transport, loop), peer)
    transport.close()
    peer.close()


async def test_the_writes_of_one_step_leave_together_when_it_ends(pair: Pair) -> None:
    pair.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    pair.transport.write(b"{}")
    assert pair.received_now() == b""
    assert await pair.received(40) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"


async def test_a_large_write_leaves_at_once(pair: Pair) -> None:
    body = b"x" * FLUSH_BYTES
    pair.transport.write(b"head\r\n\r\n")
    pair.transport.write(body)
    assert pair.received_now().startswith(b"head\r\n\r\nx")


async def test_close_sends_what_was_gathered_first(pair: Pair) -> None:
    pair.transport.write(b"last words")
    pair.transport.close()
    assert await pair.received(100) == b"last words"
