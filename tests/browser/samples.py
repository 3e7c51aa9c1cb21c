"""Artifacts an agent might store, made in code (no binary fixtures in the repository)."""

from __future__ import annotations

import struct
import zlib

# Agent-written HTML whose script would rewrite the marker, flag the top page and retitle it: the
# preview must show the marker unchanged.
HOSTILE_HTML = (
    b"<!doctype html><html><head><title>report</title></head><body>"
    b'<h1>Quarterly report</h1><p id="marker">script did not run</p>'
    b"<script>document.getElementById('marker').textContent='SCRIPT RAN';"
    b"try{top.document.title='PWNED';top.document.body.setAttribute('data-pwned','1')}catch(e){}"
    b"</script></body></html>"
)


def gradient_png(width: int = 480, height: int = 300) -> bytes:
    """A real PNG (a colour gradient), built with zlib alone."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows += bytes((40 + 180 * x // width, 90 + 120 * y // height, 220 - 100 * x // width))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")
    )


def sales_csv(rows: int = 40) -> bytes:
    lines = ["region,product,units,revenue_usd"]
    regions = ("North", "South", "East", "West")
    products = ("Widget", "Gadget", "Doohickey")
    for n in range(rows):
        lines.append(f"{regions[n % 4]},{products[n % 3]},{10 + n * 7 % 90},{(10 + n * 7 % 90) * 19.5:.2f}")
    return ("\n".join(lines) + "\n").encode()


def one_page_pdf(text: str = "Hello from an agent") -> bytes:
    """A minimal valid one-page PDF with a line of text."""
    stream = f"BT /F1 28 Tf 72 700 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
