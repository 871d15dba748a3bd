"""A VAT number read off a photo, an image or a PDF (PRODUCT.md §6).

Everything stays in memory: the file arrives as bytes, Pillow prepares the image,
and Tesseract (Debian's `tesseract-ocr` with `tesseract-ocr-ita`) reads it from a
pipe and writes its text to a pipe; nothing touches the disk. Preparing happens in
a worker thread and Tesseract in a process of its own, so the event loop keeps
answering everyone else while a photo is read; at most `READERS` files are read at
once, so that a burst of photos cannot take every core from the bot.

A PDF's text layer is read directly (pypdf): an invoice saved from software has one,
and reading it is exact where OCR guesses.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import subprocess
import warnings
import weakref
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from bot.domain.vat_finder import vat_candidates

log = logging.getLogger(__name__)

# The Bot API hands bots files up to 20 MB; anything bigger is refused unread.
MAX_BYTES = 20 * 1024 * 1024
# A photo of that size decompresses to far less; more pixels than this is a bomb.
MAX_PIXELS = 50_000_000
READERS = 2
TESSERACT_SECONDS = 30
PDF_PAGES = 3
# Text lines of a phone photo come out ~20-40 px tall at this width: what Tesseract
# reads best. Smaller photos are scaled up to it, larger ones down (faster, no loss).
TARGET_WIDTH = 2000
# Never more than this much larger (a tiny image blown up costs seconds and gigabytes),
# nor larger than this many pixels, nor stranger in shape than this (a 10×800 strip
# holds no invoice).
MAX_SCALE = 4.0
MAX_PREPARED_PIXELS = 12_000_000
MAX_ASPECT = 20
# The text looked through for numbers: an invoice's first pages are a few thousand
# characters; a file of nothing but numbers is not read for minutes.
MAX_TEXT = 20_000
# Small rotations of a hand-held photo, tried to straighten the lines of text.
SKEW_DEGREES = 5.0
SKEW_STEP = 0.5

# One per event loop (tests run several, one after another).
# Pillow checks the pixel count on open, before decoding: past this limit it raises, as
# its documentation suggests, instead of warning and decoding a bomb.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)

_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


class UnreadableFile(Exception):
    """The file cannot be read: `reason` is a catalogue key's suffix (too_big, not_image,
    pdf_locked, pdf_broken, no_ocr)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Reading:
    """What a file gave: its VAT numbers, best first (at most three), and whether any
    text at all was found (a blank page and a page without a number read differently)."""

    candidates: list[str]
    had_text: bool


@cache
def ocr_available() -> bool:
    """Whether Tesseract and its Italian data are on this machine (asked once)."""
    if shutil.which("tesseract") is None:
        return False
    try:
        listed = subprocess.run(
            ["tesseract", "--list-langs"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "ita" in listed.stdout.split()


def is_pdf(data: bytes, mime_type: str | None) -> bool:
    return data[:5] == b"%PDF-" or mime_type == "application/pdf"


async def read_vat_numbers(data: bytes, *, mime_type: str | None, country: str) -> Reading:
    """The VAT numbers in a photo, image or PDF; raise UnreadableFile when it cannot be read."""
    if len(data) > MAX_BYTES:
        raise UnreadableFile("too_big")
    loop = asyncio.get_running_loop()
    async with _readers.setdefault(loop, asyncio.Semaphore(READERS)):
        if is_pdf(data, mime_type):
            text = await asyncio.to_thread(pdf_text, data)
            if not text.strip():
                raise UnreadableFile("pdf_no_text")  # a scan saved as PDF: a photo reads it
        else:
            if not ocr_available():
                raise UnreadableFile("no_ocr")
            prepared = await asyncio.to_thread(prepare_image, data)
            text = await tesseract(prepared)
        # Beside the loop as well: a page dense with numbers takes a while to sift.
        found = await asyncio.to_thread(vat_candidates, text[:MAX_TEXT], default_country=country)
    return Reading(found, bool(text.strip()))


# --- PDF ------------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    """The text layer of the first pages; a locked or broken PDF is said, not raised."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        # Many PDFs are "encrypted" with an empty password only to stop editing.
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("pdf_locked")
        text = ""
        for page in reader.pages[:PDF_PAGES]:
            text += (page.extract_text() or "") + "\n"
            if len(text) > MAX_TEXT:
                break
        return text
    except UnreadableFile:
        raise
    except NotImplementedError:  # an encryption pypdf cannot open without extras
        raise UnreadableFile("pdf_locked") from None
    except (PyPdfError, Exception) as exc:  # a damaged PDF fails pypdf in many ways
        log.info("a PDF could not be read: %s", type(exc).__name__)
        raise UnreadableFile("pdf_broken") from None


# --- images ------------------------------------------------------------------------


def prepare_image(data: bytes) -> bytes:
    """The photo as Tesseract reads it best: upright, grey, full contrast, straight,
    at a text size it likes, without speckles; as PNG bytes."""
    image = _open(data)
    try:
        return _prepared(image)
    except UnreadableFile:
        raise
    except Exception as exc:  # Pillow fails odd images in odd ways: not one we can read
        log.info("an image could not be prepared: %s", type(exc).__name__)
        raise UnreadableFile("not_image") from None


def _prepared(image: Image.Image) -> bytes:
    image = ImageOps.exif_transpose(image) or image  # phones store portrait sideways
    grey = ImageOps.grayscale(image)
    width, height = grey.size
    if min(width, height) < 1 or max(width, height) / min(width, height) > MAX_ASPECT:
        raise UnreadableFile("not_image")
    scale = min(TARGET_WIDTH / width, MAX_SCALE, (MAX_PREPARED_PIXELS / (width * height)) ** 0.5)
    if abs(scale - 1) > 0.1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = grey.resize(size, Image.Resampling.LANCZOS)
    grey = ImageOps.autocontrast(grey, cutoff=1)
    angle = skew_angle(grey)
    if angle:
        grey = grey.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    grey = grey.filter(ImageFilter.MedianFilter(3))
    out = io.BytesIO()
    grey.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _open(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableFile("too_big") from None
    except UnidentifiedImageError:
        raise UnreadableFile("not_image") from None
    except (OSError, ValueError, SyntaxError):  # truncated or corrupt data
        raise UnreadableFile("not_image") from None
    return image


def skew_angle(grey: Image.Image) -> float:
    """The small rotation that straightens the lines of text: the angle whose rows of
    dark pixels differ most from each other (lines and the gaps between them sharp),
    measured on a small copy."""
    small = grey.copy()
    small.thumbnail((600, 600))
    ink = np.asarray(small) < 128
    if not ink.any():
        return 0.0
    ink_image = Image.fromarray((ink * 255).astype(np.uint8))
    best, best_score = 0.0, -1.0
    steps = int(SKEW_DEGREES / SKEW_STEP)
    for step in range(-steps, steps + 1):
        angle = step * SKEW_STEP
        rows = np.asarray(ink_image.rotate(angle, resample=Image.Resampling.NEAREST)).sum(axis=1)
        score = float(np.var(rows.astype(np.float64)))
        if score > best_score:
            best, best_score = angle, score
    return best


async def tesseract(png: bytes) -> str:
    """Tesseract's text of the image, from a pipe to a pipe."""
    process = await asyncio.create_subprocess_exec(
        "tesseract",
        "stdin",
        "stdout",
        "-l",
        "ita",
        "--psm",
        "3",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        # One core per photo: the other stays for the bot's answers.
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(png), TESSERACT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        log.warning("tesseract took over %s s: the photo was not read", TESSERACT_SECONDS)
        return ""
    return out.decode("utf-8", errors="replace")
