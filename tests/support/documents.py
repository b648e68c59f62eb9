"""Real documents for the tests: a PDF built byte by byte, HTML pages, text."""

from __future__ import annotations

import zlib


def make_slow_pdf(pages: int = 20, lines: int = 150_000) -> bytes:
    """A small PDF made to be slow: pages of a one-letter line repeated, two text
    operators a line. pypdf takes about a second per 100,000 operators; the file is a few
    kilobytes a page."""
    return make_pdf(["a\n" * lines] * pages, compress=True)


def make_pdf(pages: list[str], *, compress: bool = False) -> bytes:
    """A valid PDF 1.4 with one Helvetica text page per entry; an empty entry makes a
    page with no text layer, like a scanned page. `compress` deflates the pages' content
    streams (/FlateDecode)."""
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    page_ids: list[int] = []
    next_id = 4
    for text in pages:
        lines = ["BT", "/F1 11 Tf", "72 740 Td", "14 TL"]
        for line in text.split("\n") if text else []:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            lines.append(f"({escaped}) Tj T*")
        lines.append("ET")
        content = "\n".join(lines).encode("latin-1") if text else b""
        content_id, page_id = next_id, next_id + 1
        next_id += 2
        flate = b""
        if compress:
            content, flate = zlib.compress(content, 9), b" /Filter /FlateDecode"
        objects[content_id] = (
            b"<< /Length %d%s >>\nstream\n" % (len(content), flate) + content + b"\nendstream"
        )
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
        ).encode()
        page_ids.append(page_id)
    kids = " ".join(f"{page_id} 0 R" for page_id in page_ids)
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode()

    out = bytearray(b"%PDF-1.4\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[n]:010d} 00000 n \n".encode() for n in range(1, size))
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


HANDBOOK_PDF_PAGES = [
    "Employee handbook\nThe cafeteria opens at 8am on weekdays.\n"
    "Parking is free for employees in lot B.",
    "Expenses\nTravel expenses are reimbursed within 30 days of submission.\n"
    "Receipts must be attached to every expense claim.",
]

RELEASE_HTML = b"""<!DOCTYPE html>
<html><head><title>Release notes 4.2</title>
<style>body { color: red }</style><script>var secret = "do not index";</script></head>
<body><nav>Home | Docs</nav>
<h1>Release 4.2</h1>
<p>The new exporter writes Parquet files. Exports of more than a million rows are streamed.</p>
<p>The legacy CSV exporter is deprecated &amp; will be removed in 5.0.</p>
</body></html>"""

POLICY_TEXT = (
    "Security policy.\n\nPasswords must be rotated every ninety days. "
    "Laptops must use full disk encryption. Lost devices are reported to the helpdesk "
    "within one hour."
)
