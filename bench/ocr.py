"""OCR benchmark: a VAT number read off a phone photo by `read_vat_numbers`.

Makes `--images` different 1280×960 invoice photos with tests/images.py (fixed seeds;
clean, turned 1-3° either way, grainy and washed out, in turn), IT00743110157 on each,
and reads them one at a time after one warm-up read. Prints p50, p95 and max of the
whole read (Pillow's preparing in a worker thread, then Tesseract from a pipe) and how
many gave IT00743110157 first; where the time goes (p50 of `prepare_image` and of
Tesseract on its PNG, timed apart on the same photos); and the floor, measured in the
same run and on the same photos: Tesseract alone on the raw JPEG bytes, unprepared,
with our p95's ratio to its p95 and how many it read right. The three are taken photo
by photo in turn, so that all see the same machine state. Then two photos read at once
(asyncio.gather, 10 rounds): the p95 of one read under that load. Last, which kinds of
test image are read (tests/test_photos.py's, and a PDF with a text layer).

    python -m bench.ocr [--images 20]

Needs Debian's tesseract-ocr, tesseract-ocr-ita and fonts-dejavu-core.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from bench import percentile
from bot.domain.vat_finder import vat_candidates
from bot.services.photos import Reading, ocr_available, prepare_image, read_vat_numbers, tesseract
from tests.images import invoice_lines, invoice_photo, text_pdf

VAT = "IT00743110157"
VAT_LINE = "P.IVA 00743110157"
GOAL_S = 3.0
ROUNDS = 10  # of two photos read at once


def phone_photos(count: int) -> list[tuple[str, bytes]]:
    """`count` different phone photos of the invoice: (how it was taken, JPEG bytes)."""
    photos = []
    for seed in range(count):
        rng = random.Random(seed)
        kind = seed % 4
        if kind == 0:
            photos.append(("clean", invoice_photo(VAT_LINE, seed=seed)))
        elif kind == 1:
            angle = round(rng.uniform(1, 3) * rng.choice((-1, 1)), 1)
            photos.append((f"rotated {angle}°", invoice_photo(VAT_LINE, rotate=angle, seed=seed)))
        elif kind == 2:
            noise = rng.randint(40, 70)
            photos.append((f"noise {noise}", invoice_photo(VAT_LINE, noise=noise, seed=seed)))
        else:
            contrast = round(rng.uniform(0.25, 0.5), 2)
            photo = invoice_photo(VAT_LINE, contrast=contrast, seed=seed)
            photos.append((f"contrast {contrast}", photo))
    return photos


def test_images() -> list[tuple[str, bytes, list[str]]]:
    """tests/test_photos.py's kinds of image: (kind, bytes, the candidates expected)."""
    return [
        ("clean", invoice_photo(VAT_LINE), [VAT]),
        ("rotated 3°", invoice_photo(VAT_LINE, rotate=3), [VAT]),
        ("rotated -3°", invoice_photo(VAT_LINE, rotate=-3, seed=1), [VAT]),
        ("noisy", invoice_photo(VAT_LINE, noise=60, seed=2), [VAT]),
        ("low contrast", invoice_photo(VAT_LINE, contrast=0.25, seed=3), [VAT]),
        ("wrong check digit", invoice_photo("P.IVA 00743110158"), []),
        ("no number", invoice_photo(None), []),
        ("spaced, with IT", invoice_photo("Partita IVA: IT 00743 110 157", seed=4), [VAT]),
        ("small 640×480", invoice_photo(VAT_LINE, size=(640, 480), seed=5), [VAT]),
        ("text PDF", text_pdf([text for text, _, _ in invoice_lines(VAT_LINE)]), [VAT]),
    ]


async def read(data: bytes) -> Reading:
    mime_type = "application/pdf" if data.startswith(b"%PDF-") else "image/jpeg"
    return await read_vat_numbers(data, mime_type=mime_type, country="IT")


async def timed_read(data: bytes) -> float:
    started = time.perf_counter()
    await read(data)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    if not ocr_available():
        raise SystemExit("Tesseract with its Italian data (tesseract-ocr-ita) is not installed")
    photos = phone_photos(args.images)
    await read(photos[0][1])  # warm-up: Tesseract's data into the page cache

    whole: list[float] = []
    preparing: list[float] = []
    ocr: list[float] = []
    floor: list[float] = []
    misread: list[str] = []
    floor_right = 0
    for label, photo in photos:
        started = time.perf_counter()
        reading = await read(photo)
        whole.append(time.perf_counter() - started)
        if reading.candidates[:1] != [VAT]:
            misread.append(f"{label}: {reading.candidates}")

        started = time.perf_counter()
        png = await asyncio.to_thread(prepare_image, photo)
        prepared = time.perf_counter()
        await tesseract(png)
        preparing.append(prepared - started)
        ocr.append(time.perf_counter() - prepared)

        started = time.perf_counter()
        text = await tesseract(photo)  # the JPEG as it came, unprepared
        floor.append(time.perf_counter() - started)
        floor_right += vat_candidates(text, default_country="IT")[:1] == [VAT]

    loaded: list[float] = []
    for round_ in range(ROUNDS):
        pair = [photos[(2 * round_ + i) % len(photos)][1] for i in range(2)]
        loaded += await asyncio.gather(*(timed_read(photo) for photo in pair))

    p95, floor_p95 = percentile(whole, 0.95), percentile(floor, 0.95)
    count = len(photos)
    print(f"photos: {count} at 1280×960, read one at a time after one warm-up read")
    print(f"read_vat_numbers p50:          {percentile(whole, 0.5):.2f} s")
    print(f"read_vat_numbers p95:          {p95:.2f} s   (goal <= {GOAL_S:.0f} s)")
    print(f"read_vat_numbers max:          {max(whole):.2f} s")
    print(f"  read right ({VAT} first):  {count - len(misread)} of {count}")
    for line in misread:
        print(f"    misread {line}")
    print(f"  prepare_image p50 (thread):  {percentile(preparing, 0.5):.2f} s")
    print(f"  Tesseract on its PNG p50:    {percentile(ocr, 0.5):.2f} s")
    print(
        f"Tesseract on the raw JPEG p50 / p95: {percentile(floor, 0.5):.2f} / "
        f"{floor_p95:.2f} s   (the floor; read right: {floor_right} of {count})"
    )
    print(f"ratio p95 / floor p95:         {p95 / floor_p95:.1f}x")
    print(
        f"two at once (gather, {ROUNDS} rounds) p95 of a read: "
        f"{percentile(loaded, 0.95):.2f} s   (max {max(loaded):.2f} s)"
    )

    print("which test images are read:")
    for kind, data, expected in test_images():
        started = time.perf_counter()
        reading = await read(data)
        seconds = time.perf_counter() - started
        verdict = "as expected" if reading.candidates == expected else f"expected {expected}"
        had_text = "yes" if reading.had_text else "no"
        print(
            f"  {kind:<18} {reading.candidates!s:<19} text {had_text:<3}  {seconds:5.2f} s  "
            f"{verdict}"
        )


if __name__ == "__main__":
    asyncio.run(main())
