"""A VAT number from a photo, an image or a PDF (PRODUCT.md §6): the reader on images
made here as a phone takes them, and the conversation through the fake Bot API."""

from __future__ import annotations

import asyncio
import io
import random
import threading
import time

import pytest
from PIL import Image

from bot.domain.vat_finder import vat_candidates
from bot.services import photos
from bot.services.photos import UnreadableFile, read_vat_numbers
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.factories import VATS
from tests.harness import Harness, buttons, running_bot
from tests.images import invoice_photo, locked_pdf, text_pdf
from tests.test_conversations import join, load_programme

pytestmark = pytest.mark.skipif(
    not photos.ocr_available(), reason="tesseract-ocr and tesseract-ocr-ita are not installed"
)

BIANCHI = VATS[1]  # IT00743110157: in the vendor's history, bought long ago


# --- the reader: which test images are read ----------------------------------------


READ = {
    "clean": invoice_photo(),
    "rotated 3°": invoice_photo(rotate=3),
    "rotated -3°": invoice_photo(rotate=-3, seed=1),
    "noisy": invoice_photo(noise=60, seed=2),
    "low contrast": invoice_photo(contrast=0.25, seed=3),
    "spaced, with IT": invoice_photo("Partita IVA: IT 00743 110 157", seed=4),
    "small (640×480)": invoice_photo(size=(640, 480), seed=5),
    "PNG document": None,  # made below from the clean photo
}


def as_png(jpeg: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("name", list(READ))
async def test_the_vat_number_is_read_off_a_phone_photo(name):
    data = READ[name] or as_png(READ["clean"])
    reading = await read_vat_numbers(data, mime_type=None, country="IT")
    assert reading.candidates == [BIANCHI]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("wrong check digit", invoice_photo("P.IVA 00743110158")),
        ("no number at all", invoice_photo(None)),
    ],
)
async def test_a_photo_without_a_valid_number_gives_no_candidate(name, data):
    reading = await read_vat_numbers(data, mime_type=None, country="IT")
    assert reading.candidates == []
    assert reading.had_text  # the invoice was read: only the number is missing


async def test_a_pdf_is_read_from_its_text_layer_with_both_companies_labelled_first():
    pdf = text_pdf(
        [
            "Fattura 2026/12 - Tel. 02 8765 4321",
            "Fornitore: Rossi Srl  C.F. 12345670587",
            "Cliente: Bianchi SpA  P.IVA IT00743110157",
        ]
    )
    reading = await read_vat_numbers(pdf, mime_type="application/pdf", country="IT")
    assert reading.candidates == [BIANCHI, VATS[0]]


@pytest.mark.parametrize(
    ("data", "mime_type", "reason"),
    [
        (locked_pdf(["P.IVA 00743110157"]), "application/pdf", "pdf_locked"),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage", "application/pdf", "pdf_broken"),
        (b"GIF89a but not really an image", "image/gif", "not_image"),
        (invoice_photo()[:3000], "image/jpeg", "not_image"),  # cut off halfway
        (b"\0" * (photos.MAX_BYTES + 1), "image/jpeg", "too_big"),
    ],
)
async def test_a_file_that_cannot_be_read_says_why(data, mime_type, reason):
    with pytest.raises(UnreadableFile) as refused:
        await read_vat_numbers(data, mime_type=mime_type, country="IT")
    assert refused.value.reason == reason


async def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, format="PNG")  # 100 Mpx in a few kB
    with pytest.raises(UnreadableFile) as refused:
        await read_vat_numbers(out.getvalue(), mime_type="image/png", country="IT")
    assert refused.value.reason == "too_big"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P.IVA 00743110157", [BIANCHI]),
        ("VAT No. 00743110157", [BIANCHI]),
        ("CF 00743110157", [BIANCHI]),
        ("PI: 00743110157", [BIANCHI]),
        ("Partita IVA e CF 00743110157", [BIANCHI]),
        ("IT-007.431.101.57", [BIANCHI]),
        ("P.IVA 0O743110157", [BIANCHI]),  # OCR's O for 0
        ("Tel. 02 8765 4321 - P.IVA 00743110157", [BIANCHI]),
        ("UID ATU13585627", ["ATU13585627"]),
        ("BTW NL004495445B01", ["NL004495445B01"]),
        ("CIF ESB58378431", ["ESB58378431"]),
        ("TVA FR40303265045", ["FR40303265045"]),
        ("DE 136695976", ["DE136695976"]),
        ("P.IVA 00743110158", []),  # a wrong check digit
        ("Fattura 12345 del 03/11/2026", []),
    ],
)
def test_vat_numbers_are_found_in_the_shapes_documents_print_them(text, expected):
    assert vat_candidates(text, default_country="IT") == expected


def test_a_page_dense_with_numbers_is_sifted_without_end():
    dense = " ".join(str(n % 10) for n in range(photos.MAX_TEXT))
    started = time.perf_counter()
    assert len(vat_candidates(dense, default_country="IT")) <= 3
    # Not a timed test: a guard against the minutes the unbounded sift took.
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("size", [(10, 800), (30_000, 4)])
async def test_an_image_of_no_sensible_shape_is_refused_quickly(size):
    out = io.BytesIO()
    Image.new("L", size, 255).save(out, format="PNG")
    with pytest.raises(UnreadableFile) as refused:
        await read_vat_numbers(out.getvalue(), mime_type="image/png", country="IT")
    assert refused.value.reason == "not_image"


def test_damaged_pdfs_are_said_never_raised():
    good = text_pdf(["P.IVA 00743110157"])
    rng = random.Random(7)
    for _ in range(300):
        broken = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        try:
            photos.pdf_text(bytes(broken))
        except UnreadableFile as refused:
            assert refused.reason in ("pdf_broken", "pdf_locked")


async def test_a_scanned_pdf_without_text_is_said_as_such():
    out = io.BytesIO()
    Image.open(io.BytesIO(invoice_photo())).save(out, format="PDF")  # an image, no text
    with pytest.raises(UnreadableFile) as refused:
        await read_vat_numbers(out.getvalue(), mime_type="application/pdf", country="IT")
    assert refused.value.reason == "pdf_no_text"


# --- in chat --------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
async def bot(request, tmp_path, rules):
    url = database_url_for(request.param, tmp_path)
    if request.param == "postgresql":
        await reset_postgresql(url)
    async with running_bot(tmp_path, database_url=url) as harness:
        await load_programme(harness, rules, tmp_path)
        yield harness


async def draft_step(bot: Harness, user_id: int) -> str | None:
    draft = await bot.resources.drafts.load(user_id)
    return None if draft is None else draft.step.value


async def test_a_photo_sent_outside_a_conversation_starts_new_and_the_tap_goes_on_as_typed(bot):
    chat = await join(bot, 11, language="en")
    [offer] = await chat.send(**bot.api.user_file(invoice_photo(), kind="photo"))
    assert "I read this VAT number in your file" in offer["text"]
    assert "Which customer? Send the VAT number." in offer["text"]  # typing still works
    assert buttons(offer) == [(BIANCHI, buttons(offer)[0][1])]
    assert await draft_step(bot, 11) == "vat"
    [verdict] = await chat.press(offer, BIANCHI)
    assert "is a new customer" in verdict["text"] and "Bianchi SpA" in verdict["text"]
    assert "Estimated deal value" in verdict["text"]  # the next question, as if typed
    assert buttons(offer) == []  # the choice is made
    assert await draft_step(bot, 11) == "value"
    # The file was fetched through getFile and read from memory, never from a path.
    assert [m for m, _ in bot.api.calls].count("getFile") == 1


async def test_an_invoice_pdf_at_the_vat_question_offers_both_numbers_best_first(bot):
    chat = await join(bot, 11, language="en")
    await chat.send("/new")
    pdf = text_pdf(["Rossi Srl VAT IT12345670587", "Cliente Bianchi SpA - 00743110157"])
    [offer] = await chat.send(**bot.api.user_file(pdf, kind="document"))
    assert [label for label, _ in buttons(offer)] == [VATS[0], BIANCHI]
    [verdict] = await chat.press(offer, VATS[0])
    assert "What is the customer's company name?" in verdict["text"]


async def test_a_photo_without_a_number_is_one_sentence_and_typing_still_works(bot):
    chat = await join(bot, 11, language="en")
    await chat.send("/new")
    [answer] = await chat.send(**bot.api.user_file(invoice_photo(None), kind="photo"))
    assert "I found no valid VAT number in that file" in answer["text"]
    assert buttons(answer) == []
    [verdict] = await chat.send(BIANCHI)
    assert "is a new customer" in verdict["text"]


async def test_files_that_cannot_be_read_get_one_sentence_and_the_question_again(bot):
    chat = await join(bot, 11, language="en")
    await chat.send("/new")
    huge = bot.api.user_file(b"x", kind="photo", size=photos.MAX_BYTES + 1)
    [too_big] = await chat.send(**huge)
    assert "larger than 20 MB" in too_big["text"] and "Which customer?" in too_big["text"]
    locked = bot.api.user_file(locked_pdf(["P.IVA 00743110157"]), kind="document")
    [said] = await chat.send(**locked)
    assert "protected by a password" in said["text"]
    fake = bot.api.user_file(b"not a picture", kind="document", mime_type="image/png")
    [said] = await chat.send(**fake)
    assert "could not open that file as a picture" in said["text"]
    # Nothing was downloaded for the file Telegram said was too big.
    assert "photo" not in {c.get("file_id", "")[:5] for m, c in bot.api.calls if m == "getFile"}
    assert await draft_step(bot, 11) == "vat"


async def test_without_tesseract_a_photo_gets_one_sentence_and_a_pdf_is_still_read(
    bot, monkeypatch
):
    monkeypatch.setattr(photos, "ocr_available", lambda: False)
    chat = await join(bot, 11, language="en")
    [said] = await chat.send(**bot.api.user_file(invoice_photo(), kind="photo"))
    assert "Photos cannot be read on this installation" in said["text"]
    [offer] = await chat.send(**bot.api.user_file(text_pdf(["P.IVA 00743110157"]), kind="document"))
    assert [label for label, _ in buttons(offer)] == [BIANCHI]


async def test_a_photo_from_someone_not_linked_is_one_sentence_and_is_not_read(bot):
    stranger = bot.chat(77, "en")
    [answer] = await stranger.send(**bot.api.user_file(invoice_photo(), kind="photo"))
    assert "works only for partners' salespeople" in answer["text"]
    assert "getFile" not in [m for m, _ in bot.api.calls]


async def test_a_photo_while_the_reason_for_more_time_is_asked_starts_nothing(bot):
    chat = await join(bot, 11, language="en")
    async with bot.sessions() as session:
        await session.commit()
    await bot.resources.conversations.save(
        11,
        "more_time",
        {"reference": "PAI-ABCDEF", "asked_at": bot.clock.now().isoformat()},
        bot.clock.now(),
    )
    [again] = await chat.send(**bot.api.user_file(invoice_photo(), kind="photo"))
    assert "Please answer with a text message." in again["text"]
    assert "PAI-ABCDEF" in again["text"]
    assert await draft_step(bot, 11) is None
    assert "getFile" not in [m for m, _ in bot.api.calls]


async def test_a_photo_mid_registration_after_the_vat_is_not_read_as_one(bot):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {BIANCHI}")
    [again] = await chat.send(**bot.api.user_file(invoice_photo(), kind="photo"))
    assert "Estimated deal value" in again["text"]  # the question asked, again
    assert "getFile" not in [m for m, _ in bot.api.calls]


async def test_another_user_is_answered_while_a_photo_is_read(bot, monkeypatch):
    reader = await join(bot, 11, language="en")
    other = await join(bot, 12, language="en")
    reading, release = threading.Event(), threading.Event()
    prepare = photos.prepare_image

    def slow_prepare(data: bytes) -> bytes:
        reading.set()
        assert release.wait(timeout=20), "the test never let the photo go"
        return prepare(data)

    monkeypatch.setattr(photos, "prepare_image", slow_prepare)
    bot.api.user_sends(reader.user, **bot.api.user_file(invoice_photo(), kind="photo"))
    await bot.post()
    await bot.wait_until(reading.is_set)
    answered = len(bot.api.sent_to(other.user.id))
    bot.api.user_sends(other.user, "/help")
    await bot.post()
    # The photo is still being read (its worker thread waits) and /help is answered.
    await bot.wait_until(lambda: len(bot.api.sent_to(other.user.id)) > answered)
    assert not [m for m in bot.api.sent_to(reader.user.id) if "I read" in m["text"]]
    release.set()
    await bot.deliver()
    assert "I read this VAT number" in bot.api.sent_to(reader.user.id)[-1]["text"]
    await asyncio.sleep(0)
