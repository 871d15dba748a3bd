"""Pictures and PDFs of invoices and business cards, made here with Pillow and a Debian
font (fonts-dejavu-core), as a phone would take them: for the VAT-from-a-photo tests and
bench/ocr.py."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
PHONE = (1280, 960)


def invoice_lines(vat_line: str | None) -> list[tuple[str, int, bool]]:
    """An invoice header: (text, size in px, bold)."""
    lines = [
        ("FATTURA N. 2026/0412", 44, True),
        ("Data: 03/11/2026", 30, False),
        ("Rossi Informatica S.r.l.", 36, True),
        ("Via Roma 12 - 20121 Milano (MI)", 30, False),
        ("Tel. 02 8765 4321 - info@rossi.example", 30, False),
    ]
    if vat_line:
        lines.append((vat_line, 32, False))
    lines.append(("Descrizione: licenze gestionale, 10 postazioni", 28, False))
    return lines


def invoice_photo(
    vat_line: str | None = "P.IVA 00743110157",
    *,
    size: tuple[int, int] = PHONE,
    rotate: float = 0.0,
    noise: float = 0.0,
    contrast: float = 1.0,
    seed: int = 0,
) -> bytes:
    """A JPEG as a phone takes it: the header on slightly grey paper, perhaps turned a
    little, grainy, or washed out (`contrast` < 1 brings ink and paper together)."""
    rng = random.Random(seed)
    paper, ink = 235, 30
    if contrast != 1.0:
        middle = (paper + ink) / 2
        paper = round(middle + (paper - middle) * contrast)
        ink = round(middle + (ink - middle) * contrast)
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    y = 80 + rng.randint(0, 40)
    x = 90 + rng.randint(0, 40)
    for text, px, bold in invoice_lines(vat_line):
        font = ImageFont.truetype(str(BOLD if bold else FONT), round(px * size[0] / PHONE[0]))
        draw.text((x, y), text, fill=ink, font=font)
        y += round(px * 1.8 * size[0] / PHONE[0])
    if rotate:
        image = image.rotate(rotate, resample=Image.Resampling.BICUBIC, fillcolor=paper)
    if noise:
        grain = Image.effect_noise(size, noise)
        image = Image.blend(image, grain, 0.25).filter(ImageFilter.GaussianBlur(0.8))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def text_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with a real text layer (Helvetica), as invoicing software writes one."""
    content = "BT /F1 14 Tf 72 760 Td 18 TL " + " ".join(
        "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '"
        for line in lines
    )
    stream = content + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def locked_pdf(lines: list[str]) -> bytes:
    """The same PDF with a password to open it."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(text_pdf(lines))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="segreto", owner_password="segreto")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
