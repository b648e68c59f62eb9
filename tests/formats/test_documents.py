"""OpenDocument text and presentations, EPUB and RTF through POST /ingest/file (issue 33):
each made by its own writer (pandoc, odfpy) is read under its headings and answered from
with an exact quote, a slide cites its page; each hostile or damaged file is refused with
its status, and nothing is stored."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from ingest.sources.detection import detect_kind
from tests.support.client import upload
from tests.support.inspection import stored_chunks, stored_text, vector_file_ids
from tests.support.office_files import BILLION_LAUGHS
from tests.support.reading import accepted, answer_quoting, texts_by_context

GUIDE = """---
title: Field Guide to Beekeeping
---

# Hives

The hive is inspected every nine days in summer. A healthy queen lays up to two thousand
eggs a day.

## Frames

- Frames are pulled out one at a time.
- Each frame is checked for *brood* and pollen.

| Tool | Use |
|------|-----|
| Smoker | Calms the colony |
| Hive tool | Pries the frames apart |

# Harvest

Honey is harvested when most cells are capped with wax.[^1]

[^1]: Uncapped honey ferments in the jar.
"""
SLIDES = [
    ("Revenue", ["Revenue grew by twelve percent in the third quarter."], "Mention the euro."),
    ("Hiring", ["We hired forty engineers in Lisbon.", "Two teams moved."], "Thank recruiting."),
]
MEDIA_TYPES = {
    "odt": "application/vnd.oasis.opendocument.text",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "epub": "application/epub+zip",
    "rtf": "application/rtf",
}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The guide as pandoc writes it in each format, and the slides as odfpy writes them."""
    import pypandoc

    directory = tmp_path_factory.mktemp("made")
    documents = {}
    for kind in ("odt", "epub", "rtf"):
        path = directory / f"guide.{kind}"
        pypandoc.convert_text(
            GUIDE, kind, format="markdown", outputfile=str(path), extra_args=["--standalone"]
        )
        documents[kind] = path.read_bytes()
    documents["odp"] = _odfpy_slides()
    return documents


def _odfpy_slides() -> bytes:
    from odf import dc
    from odf.draw import Frame, Page, TextBox
    from odf.namespaces import PRESENTATIONNS
    from odf.opendocument import OpenDocumentPresentation
    from odf.presentation import Notes
    from odf.style import MasterPage, PageLayout
    from odf.text import List, ListItem, P

    document = OpenDocumentPresentation()
    document.meta.addElement(dc.Title(text="Quarterly review"))
    layout = PageLayout(name="layout")
    document.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    document.masterstyles.addElement(master)

    def frame(kind: str, *blocks) -> Frame:
        shape = Frame(width="20cm", height="4cm", x="2cm", y="2cm")
        shape.setAttrNS(PRESENTATIONNS, "class", kind)
        box = TextBox()
        for block in blocks:
            box.addElement(block)
        shape.addElement(box)
        return shape

    for number, (title, points, notes) in enumerate(SLIDES, start=1):
        slide = Page(masterpagename=master, name=f"page{number}")
        slide.addElement(frame("title", P(text=title)))
        items = List()
        for point in points:
            item = ListItem()
            item.addElement(P(text=point))
            items.addElement(item)
        slide.addElement(frame("outline", items))
        speaker = Notes()
        speaker.addElement(frame("notes", P(text=notes)))
        slide.addElement(speaker)
        document.presentation.addElement(slide)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def rezipped(data: bytes, members: dict[str, bytes]) -> bytes:
    """The zip `data` with `members` replaced or added, the mimetype first and stored (as
    ODF and EPUB have it), the rest deflated."""
    named = dict(members)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            value = named.pop(info.filename, None)
            stored = info.filename == "mimetype" and value is None
            target.writestr(
                info.filename,
                source.read(info) if value is None else value,
                compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
            )
        for name, value in named.items():
            target.writestr(name, value, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def damaged(data: bytes, name: str, *, method: int | None = None) -> bytes:
    """The zip `data` with member `name`'s deflate stream broken from its first byte (a
    reserved block type), or recorded as compressed by `method` (one zipfile lacks)."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    if method is None:
        local = info.header_offset
        start = local + 30 + int.from_bytes(out[local + 26 : local + 28], "little")
        start += int.from_bytes(out[local + 28 : local + 30], "little")
        out[start] = 0xFF
        return bytes(out)
    central = out.find(b"PK\x01\x02")
    while out[central + 46 : central + 46 + len(name)] != name.encode():
        central = out.find(b"PK\x01\x02", central + 4)
    out[central + 10 : central + 12] = method.to_bytes(2, "little")
    return bytes(out)


def refused(api, data_dir: Path, name: str, data: bytes) -> tuple[int, str]:
    """The refusal's status and message, having checked that nothing was stored."""
    response = upload(api, name, data)
    assert vector_file_ids(data_dir) == []
    assert api.get("/documents").json()["total"] == 0
    return response.status_code, response.json()["detail"]


class TestOpenDocumentText:
    def test_an_odt_made_by_pandoc_is_read_under_its_headings(
        self, api, registry_mode, data_dir: Path, made
    ):
        accepted(api, "guide.odt", made["odt"], MEDIA_TYPES["odt"])
        chunks = texts_by_context(data_dir)
        frames = chunks["Field Guide to Beekeeping > Hives > Frames"]
        assert "Frames are pulled out one at a time." in frames
        assert "Smoker; Calms the colony" in frames  # a table row, its cells in order
        assert "Each frame is checked for brood and pollen." in frames
        harvest = chunks["Field Guide to Beekeeping > Harvest"]
        assert "Uncapped honey ferments in the jar." in harvest  # the footnote, after it

    def test_comments_and_tracked_deletions_are_not_indexed(self, api, data_dir: Path, made):
        with zipfile.ZipFile(io.BytesIO(made["odt"])) as archive:
            content = archive.read("content.xml").decode()
        comment = (
            "<office:annotation><dc:creator>Reviewer</dc:creator><text:p>Rewrite this "
            "sentence about wax.</text:p></office:annotation>"
        )
        deleted = (
            '<text:tracked-changes><text:changed-region text:id="c1"><text:deletion>'
            "<text:p>Bees were once kept in straw skeps.</text:p></text:deletion>"
            "</text:changed-region></text:tracked-changes>"
        )
        content = content.replace("Honey is harvested", comment + "Honey is harvested", 1)
        content = content.replace("<office:text>", "<office:text>" + deleted, 1)
        assert '"urn:oasis:names:tc:opendocument:xmlns:text:1.0"' in content
        if 'xmlns:dc="' not in content:
            content = content.replace(
                "<office:document-content ",
                '<office:document-content xmlns:dc="http://purl.org/dc/elements/1.1/" ',
                1,
            )
        reviewed = rezipped(made["odt"], {"content.xml": content.encode()})
        accepted(api, "reviewed.odt", reviewed, MEDIA_TYPES["odt"])
        text = stored_text(data_dir)
        assert "Honey is harvested when most cells are capped with wax." in text
        assert "Rewrite this sentence" not in text
        assert "Reviewer" not in text
        assert "straw skeps" not in text


class TestOpenDocumentPresentation:
    def test_an_odp_made_by_odfpy_is_read_slide_by_slide_with_its_notes(
        self, api, registry_mode, data_dir: Path, made
    ):
        accepted(api, "review.odp", made["odp"], MEDIA_TYPES["odp"])
        chunks = texts_by_context(data_dir)
        assert set(chunks) == {"Quarterly review > Revenue", "Quarterly review > Hiring"}
        hiring = chunks["Quarterly review > Hiring"]
        assert "We hired forty engineers in Lisbon." in hiring
        assert "Thank recruiting." in hiring  # the speaker notes

    def test_each_chunk_cites_its_slide_as_its_page(self, api, data_dir: Path, made):
        upload(api, "review.odp", made["odp"])
        assert [(c["context"], c["pages"]) for c in stored_chunks(data_dir)] == [
            ("Quarterly review > Revenue", [1, 1]),
            ("Quarterly review > Hiring", [2, 2]),
        ]

    def test_a_question_is_answered_from_a_slide(self, api, data_dir: Path, made):
        upload(api, "review.odp", made["odp"])
        text = "\n".join(" ".join([title, *points, notes]) for title, points, notes in SLIDES)
        answer, body = answer_quoting(api, "How many engineers were hired in Lisbon?", text)
        assert "We hired forty engineers in Lisbon." in answer
        assert body["sources"][0]["context"] == "Quarterly review > Hiring"
        assert body["sources"][0]["pageSpan"] == {"firstPage": 2, "lastPage": 2}


class TestEpub:
    def test_an_epub_made_by_pandoc_is_read_chapter_by_chapter_under_its_title(
        self, api, data_dir: Path, made
    ):
        accepted(api, "guide.epub", made["epub"], MEDIA_TYPES["epub"])
        chunks = texts_by_context(data_dir)
        assert (
            "Frames are pulled out one at a time."
            in chunks["Field Guide to Beekeeping > Hives > Frames"]
        )
        harvest = chunks["Field Guide to Beekeeping > Harvest"]
        # The footnote's number is not inside the sentence citing it; its note is read.
        assert "Honey is harvested when most cells are capped with wax.\n" in harvest
        assert "Uncapped honey ferments in the jar." in harvest
        # The title once at the top, never a chapter file's name; no table of contents.
        assert all(context.count("Field Guide") == 1 for context in chunks)
        assert not any(".xhtml" in context for context in chunks)
        assert "Title Page" not in stored_text(data_dir)

    def test_a_drm_encrypted_epub_is_refused_as_encrypted(self, api, data_dir: Path, made):
        encryption = (
            b'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            b'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            b'<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            b'<enc:CipherData><enc:CipherReference URI="EPUB/text/ch001.xhtml"/>'
            b"</enc:CipherData></enc:EncryptedData></encryption>"
        )
        data = rezipped(made["epub"], {"META-INF/encryption.xml": encryption})
        status, detail = refused(api, data_dir, "locked.epub", data)
        assert (status, detail) == (
            422,
            "The EPUB e-book is encrypted (DRM): its chapters cannot be read; upload a copy "
            "without DRM",
        )


class TestRtf:
    def test_an_rtf_made_by_pandoc_is_read_paragraph_by_paragraph(self, api, data_dir: Path, made):
        accepted(api, "guide.rtf", made["rtf"], MEDIA_TYPES["rtf"])
        text = stored_text(data_dir)
        assert "Smoker; Calms the colony" in text
        assert "Each frame is checked for brood and pollen." in text
        assert "\\" not in text and "{" not in text  # no control words left

    def test_the_code_page_it_declares_decodes_its_text(self, api, data_dir: Path):
        rtf = (
            r"{\rtf1\ansi\ansicpg1251\deff0{\fonttbl{\f0 Arial;}}"
            r"\pard \'cf\'f0\'e8\'e2\'e5\'f2, " + "мир.\\par}"
        ).encode("cp1251")
        response = upload(api, "greeting.rtf", rtf)
        assert response.status_code == 200, response.json()
        assert "Привет, мир." in stored_text(data_dir)


@pytest.mark.parametrize("kind", ["odt", "epub", "rtf"])
def test_a_question_is_answered_with_an_exact_quote(api, data_dir: Path, made, kind):
    upload(api, f"guide.{kind}", made[kind])
    answer, _ = answer_quoting(api, "How often is the hive inspected in summer?", GUIDE)
    assert "The hive is inspected every nine days in summer." in answer
    answer, _ = answer_quoting(api, "When is honey harvested?", GUIDE)
    assert "Honey is harvested when most cells are capped with wax." in answer


class TestHostileFiles:
    def test_xml_entity_expansion_in_content_xml_is_refused(self, api, data_dir: Path, made):
        laughs = (
            BILLION_LAUGHS + b'<office:document-content xmlns:office="urn:oasis:names:tc:'
            b'opendocument:xmlns:office:1.0">&lol9;</office:document-content>'
        )
        status, detail = refused(
            api, data_dir, "laughs.odt", rezipped(made["odt"], {"content.xml": laughs})
        )
        assert status == 422
        assert detail == (
            "The OpenDocument text's content.xml declares XML entities, which are refused "
            "(entity expansion)"
        )

    @pytest.mark.parametrize(
        "kind, member", [("odt", "content.xml"), ("epub", "EPUB/text/ch001.xhtml")]
    )
    def test_a_zip_bomb_is_refused_before_it_expands(
        self, api, settings, data_dir: Path, made, kind, member
    ):
        settings.MAX_EXPANDED_MB = 2
        bomb = rezipped(made[kind], {member: b"<p>" + b" " * (8 << 20) + b"</p>"})
        assert len(bomb) < 100_000
        status, detail = refused(api, data_dir, f"bomb.{kind}", bomb)
        assert status == 413
        assert detail.endswith("refused as a zip bomb")

    def test_a_password_protected_odt_is_refused_as_encrypted(self, api, data_dir: Path, made):
        manifest = (
            b'<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:'
            b'manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" '
            b'manifest:media-type="application/vnd.oasis.opendocument.text"/>'
            b'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
            b'<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x">'
            b'<manifest:algorithm manifest:algorithm-name="Blowfish CFB" '
            b'manifest:initialisation-vector="x"/></manifest:encryption-data>'
            b"</manifest:file-entry></manifest:manifest>"
        )
        ciphered = bytes(range(256)) * 8
        data = rezipped(made["odt"], {"content.xml": ciphered, "META-INF/manifest.xml": manifest})
        status, detail = refused(api, data_dir, "secret.odt", data)
        assert (status, detail) == (
            422,
            "The OpenDocument text is encrypted with a password: save it without one and upload "
            "it again",
        )

    def test_a_bomb_in_the_mimetype_member_is_not_expanded_to_find_the_type(self, made):
        media = b"application/vnd.oasis.opendocument.text"
        bomb = rezipped(made["odt"], {"mimetype": media + b" " * (64 << 20)})
        tracemalloc.start()
        try:
            assert detect_kind(bomb, filename="bomb.odt") == "odt"
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20

    def test_a_damaged_compressed_member_is_refused_as_damaged(self, api, data_dir, made):
        data = damaged(rezipped(made["odt"], {}), "content.xml")
        status, detail = refused(api, data_dir, "damaged.odt", data)
        assert status == 422
        assert detail.startswith("The OpenDocument text cannot be read: content.xml is damaged")

    def test_a_compression_method_zipfile_lacks_is_refused_as_damaged(self, api, data_dir, made):
        data = damaged(made["epub"], "mimetype", method=99)
        status, detail = refused(api, data_dir, "odd.epub", data)
        assert (status, detail) == (
            422,
            "odd.epub cannot be read: the file is damaged or truncated (That compression "
            "method is not supported)",
        )

    @pytest.mark.parametrize(
        "kind, fragment",
        [
            ("odt", "the file is damaged or truncated"),
            ("odp", "the file is damaged or truncated"),
            ("epub", "the file is damaged or truncated"),
            ("rtf", "The RTF document is truncated or damaged: it ends with"),
        ],
    )
    def test_a_truncated_file_is_refused_as_such(self, api, data_dir: Path, made, kind, fragment):
        data = made[kind]
        status, detail = refused(api, data_dir, f"cut.{kind}", data[: len(data) // 2])
        assert status == 422
        assert fragment in detail
