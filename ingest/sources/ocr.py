"""Scans read by Tesseract, in the reading child (child.py): a PDF's pages whose text
layer is too thin, rendered by pypdfium2, and images (PNG, JPEG, each frame of a TIFF)
opened by Pillow. No Django here: the child starts in a fifth of a second.

Each page is rendered in grayscale at 300 dpi and read by one `tesseract` process with
OMP_THREAD_LIMIT=1 (its OpenMP threads fight each other on a busy machine and are slower
than one), killed past OcrLimits.page_seconds. Pages and frames are counted, and every
frame's size checked, before the first is read: a 5,000-frame TIFF or an image bomb is
refused in milliseconds.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ingest.exceptions import ContentTooLarge, OcrUnavailable, UnreadableDocument

if TYPE_CHECKING:
    from PIL.Image import Image

# A page with fewer non-blank characters in its text layer is read by OCR. Measured on
# the 53 pages of the two PDF manuals Debian ships here (libtasn1, shared-mime-info): the
# thinnest real page, a title page, has 162, the next 511, the median about 1,600; a
# scanned page has none, or what a tool stamped on it (a page number, a date: a few
# dozen at most). paperless-ngx draws the line at about 50 too. A real page under it (a
# chapter's title alone) is read by OCR as well, and keeps its text layer unless OCR
# reads more.
THIN_PAGE_CHARACTERS = 50
DPI = 300
# Tesseract's fully automatic page segmentation (its default): on real pages it read as
# well as a single block (--psm 6) and a single column (--psm 4), within 0.2 points of
# character error rate, and unlike them it keeps two columns apart.
PAGE_SEGMENTATION = "3"
BLANK_RANGE = 16  # a page whose grey levels span less than this holds no ink: not read


@dataclass(frozen=True)
class OcrLimits:
    """What OCR may take: the settings, as the child is given them."""

    command: str  # TESSERACT_COMMAND
    languages: str  # OCR_LANGUAGES, "eng+deu"
    page_seconds: float  # OCR_PAGE_TIME_LIMIT
    max_pages: int  # OCR_MAX_PAGES
    max_pixels: int  # MAX_IMAGE_PIXELS


def characters(text: str) -> int:
    """The non-blank characters of a text."""
    return sum(1 for character in text if not character.isspace())


def is_thin(text: str) -> bool:
    """Whether a page's text layer is too thin to be its text: a scan, read by OCR."""
    return characters(text) < THIN_PAGE_CHARACTERS


def check_tesseract(limits: OcrLimits) -> None:
    """OcrUnavailable, naming the Debian packages, unless Tesseract and every language
    of `limits.languages` are installed."""
    languages = limits.languages.split("+")
    packages = " and ".join(["tesseract-ocr", *map(language_package, languages)])
    if shutil.which(limits.command) is None:
        raise OcrUnavailable(
            f"Scans are read by OCR, and Tesseract ({limits.command!r}, TESSERACT_COMMAND) "
            f"is not installed here: install the Debian packages {packages}"
        )
    try:
        listed = subprocess.run(
            [limits.command, "--list-langs"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OcrUnavailable(f"Scans are read by OCR, and Tesseract cannot run: {exc}") from None
    installed = set(listed.stdout.decode(errors="replace").split()[1:])
    missing = [language for language in languages if language not in installed]
    if missing:
        raise OcrUnavailable(
            f"Scans are read by OCR in {limits.languages} (OCR_LANGUAGES), and Tesseract has "
            f"no {', '.join(missing)} here: install the Debian package "
            + " and ".join(map(language_package, missing))
        )


def language_package(language: str) -> str:
    """Debian's package of a Tesseract language: chi_sim → tesseract-ocr-chi-sim."""
    return "tesseract-ocr-" + language.lower().replace("_", "-")


def read_image(image: Image, *, limits: OcrLimits, page: int, dpi: int | None) -> str:
    """The text Tesseract reads in a grayscale image ('' for a blank one)."""
    low, high = cast(tuple[int, int], image.getextrema())  # one band: "L"
    if high - low < BLANK_RANGE:
        return ""
    pgm = io.BytesIO()
    image.save(pgm, "PPM")  # uncompressed: ten times faster to write than PNG
    command = [limits.command, "stdin", "stdout", "-l", limits.languages]
    command += ["--psm", PAGE_SEGMENTATION]
    if dpi:
        command += ["--dpi", str(dpi)]
    try:
        done = subprocess.run(
            command,
            input=pgm.getvalue(),
            capture_output=True,
            timeout=limits.page_seconds,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed tesseract
        raise UnreadableDocument(
            f"No text to index: reading page {page} by OCR took longer than "
            f"{limits.page_seconds:g} s (OCR_PAGE_TIME_LIMIT)"
        ) from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no reason"]
        raise UnreadableDocument(f"No text to index: OCR cannot read page {page} ({why[0]})")
    return done.stdout.decode(errors="replace").replace("\f", "")


def pdf_page_images(
    data: bytes, numbers: list[int], *, limits: OcrLimits
) -> Iterator[tuple[Image, int]]:
    """Each of the PDF's pages `numbers` (0-based) rendered in grayscale at 300 dpi, or
    less where 300 dpi would pass `limits.max_pixels` (a poster-sized page), with its
    resolution."""
    import pypdfium2  # type: ignore[import-untyped]

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        raise UnreadableDocument(f"No text to index: the PDF cannot be rendered ({exc})") from None
    try:
        for number in numbers:
            try:
                page = document[number]
                width, height = page.get_size()  # in points, 72 an inch
                scale = min(DPI / 72, math.sqrt(limits.max_pixels / max(width * height, 1)))
                image = page.render(scale=scale, grayscale=True).to_pil().convert("L")
                yield image, round(scale * 72)
            except pypdfium2.PdfiumError as exc:
                raise UnreadableDocument(
                    f"No text to index: page {number + 1} of the PDF cannot be rendered ({exc})"
                ) from None
    finally:
        document.close()


def image_frames(
    data: bytes, *, limits: OcrLimits
) -> tuple[int, Iterator[tuple[Image, int | None]]]:
    """How many pages an image holds (a TIFF's frames; one for a PNG or a JPEG), and each
    as a grayscale image with the resolution it states. Counted and sized before any is
    decoded: ContentTooLarge past `limits.max_pages` frames or `limits.max_pixels` pixels
    a frame, UnreadableDocument for an image Pillow cannot read."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    try:
        image = Image.open(io.BytesIO(data))
        frames = 0
        multiple = image.format == "TIFF"
        while True:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise Image.DecompressionBombError(f"{width} by {height} pixels")
            frames += 1
            if not multiple:
                break
            if frames > limits.max_pages:
                raise ContentTooLarge(
                    f"The image has more than {limits.max_pages} pages (frames); at most "
                    f"{limits.max_pages} are read by OCR (OCR_MAX_PAGES)"
                )
            try:
                image.seek(frames)
            except EOFError:
                break
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ContentTooLarge(
            f"The image is too large to read: more than {limits.max_pixels:,} pixels "
            f"(MAX_IMAGE_PIXELS), which is what an image bomb declares ({exc})"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnreadableDocument(f"No text to index: the image cannot be read ({exc})") from None
    return frames, _decoded(image, frames)


def _decoded(image: Image, frames: int) -> Iterator[tuple[Image, int | None]]:
    """Each frame in grayscale, upright (a photo's EXIF orientation), on white where it
    is transparent."""
    from PIL import Image, ImageOps

    for frame in range(frames):
        try:
            image.seek(frame)
            image.load()
            page = ImageOps.exif_transpose(image) if frame == 0 else image
            if page.mode in ("RGBA", "LA", "PA") or "transparency" in page.info:
                page = page.convert("RGBA")
                white = Image.new("RGBA", page.size, "white")
                page = Image.alpha_composite(white, page)
            yield page.convert("L"), image_dpi(image)
        except (OSError, ValueError, SyntaxError) as exc:
            raise UnreadableDocument(
                f"No text to index: page {frame + 1} of the image cannot be read ({exc})"
            ) from None


def image_dpi(image: Image) -> int | None:
    """The resolution an image states, if a plausible one (Tesseract guesses otherwise)."""
    dpi = image.info.get("dpi")
    if not dpi:
        return None
    value = round(float(dpi[0]))
    return value if 70 <= value <= 2400 else None
