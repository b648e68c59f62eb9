"""Zip containers (Office Open XML, OpenDocument, EPUB) opened within limits, and their
XML parsed safely.

A zip member's declared size can lie, and a small upload can expand to gigabytes: each
member is read in pieces and refused once the archive has expanded past MAX_EXPANDED_MB,
or a member past MAX_EXPANSION_RATIO times its compressed size. XML is parsed by
defusedxml, which refuses entity declarations (billion laughs) and external entities.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree
from django.conf import settings

from ingest.exceptions import ContentTooLarge, UnreadableDocument

_PIECE = 1 << 16
_SMALL = 1 << 20  # members expanding to less than this are never refused for their ratio
MAX_MEMBERS = 20_000


class Container:
    """A zip archive read within MAX_EXPANDED_MB and MAX_EXPANSION_RATIO."""

    def __init__(self, data: bytes, *, what: str) -> None:
        self.what = what  # "the Word document", for messages
        try:
            self.archive = zipfile.ZipFile(io.BytesIO(data))
            infos = self.archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise UnreadableDocument(
                f"{capitalised(what)} cannot be read: it is damaged or truncated ({exc})"
            ) from None
        if len(infos) > MAX_MEMBERS:
            raise ContentTooLarge(f"{capitalised(what)} holds over {MAX_MEMBERS} files")
        if any(info.flag_bits & 0x1 for info in infos):
            raise UnreadableDocument(
                f"{capitalised(what)} is encrypted: remove its password and upload it again"
            )
        self.names = [info.filename for info in infos]
        self._infos = {info.filename: info for info in infos}
        self._expanded = 0

    def __contains__(self, name: str) -> bool:
        return name in self._infos

    def read(self, name: str) -> bytes:
        """A member's bytes, counted against the archive's limits; UnreadableDocument
        when it is missing or damaged."""
        info = self._infos.get(name)
        if info is None:
            raise UnreadableDocument(f"{capitalised(self.what)} is damaged: {name} is missing")
        limit = settings.MAX_EXPANDED_MB * 1024 * 1024
        ratio = settings.MAX_EXPANSION_RATIO
        pieces = []
        size = 0
        try:
            with self.archive.open(info) as member:
                while piece := member.read(_PIECE):
                    size += len(piece)
                    self._expanded += len(piece)
                    if self._expanded > limit:
                        raise ContentTooLarge(
                            f"{capitalised(self.what)} expands to over "
                            f"{settings.MAX_EXPANDED_MB} MB (MAX_EXPANDED_MB): refused as a "
                            "zip bomb"
                        )
                    if size > _SMALL and size > ratio * max(info.compress_size, 1):
                        raise ContentTooLarge(
                            f"{capitalised(self.what)} has a member ({name}) that expands over "
                            f"{ratio} times (MAX_EXPANSION_RATIO): refused as a zip bomb"
                        )
                    pieces.append(piece)
        except (
            zipfile.BadZipFile,
            OSError,
            EOFError,
            ValueError,
            NotImplementedError,
            zlib.error,  # a damaged deflate stream: not one of zipfile's own errors
        ) as exc:
            raise UnreadableDocument(
                f"{capitalised(self.what)} cannot be read: {name} is damaged ({exc})"
            ) from None
        return b"".join(pieces)

    def check_all(self) -> None:
        """Read every member once, so that a library handed the archive afterwards
        (python-docx, openpyxl) never meets a bomb or a damaged member the limits miss."""
        for name in self.names:
            if not name.endswith("/"):
                self.read(name)


def capitalised(what: str) -> str:
    """A document's name opening a sentence: str.capitalize() would lower the rest of
    it ("The opendocument text")."""
    return what[:1].upper() + what[1:]


def damaged(what: str, exc: Exception) -> UnreadableDocument:
    """A library's failure on a document, as the upload's fault: a 422 saying so."""
    return UnreadableDocument(
        f"{capitalised(what)} cannot be read: it is damaged ({type(exc).__name__}: {exc})"
    )


def parse_xml(data: bytes, *, what: str) -> Any:
    """An XML document's root element, parsed without entity expansion; UnreadableDocument
    when it is malformed or declares entities."""
    with xml_refusals(what):
        return SafeElementTree.fromstring(data)


@contextlib.contextmanager
def xml_refusals(what: str, *, member: str = "") -> Iterator[None]:
    """defusedxml's refusals and parse errors inside the block, as UnreadableDocument
    naming `what` (and the `member` whose XML it was, if given)."""
    try:
        yield
    except DefusedXmlException:
        raise UnreadableDocument(
            f"{capitalised(what)} declares XML entities, which are refused (entity expansion)"
        ) from None
    except SafeElementTree.ParseError as exc:
        where = f" in {member}" if member else ""
        raise UnreadableDocument(
            f"{capitalised(what)} cannot be read: malformed XML{where} ({exc})"
        ) from None
