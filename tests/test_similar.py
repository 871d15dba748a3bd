"""Similar names for staff (PRODUCT.md §5): the rules of normalisation, the block key,
and the look-up against SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from bot.app.cli import main
from bot.domain.names import blocks_to_search, name_block, normalised_name
from bot.services.similar import SimilarCustomer, SimilarHolder, similar_customers
from models import NAME_BLOCK_LENGTH, Customer
from tests.factories import (
    NOW,
    VATS,
    add_partners,
    add_purchases,
    italian_vat,
    link_salesperson,
    register,
    write_csv,
)

TODAY = dt.date(2026, 11, 28)
# Old enough that the customer is new again, so a partner can register it.
LONG_AGO = "2025-01-10"

LEGAL_FORMS = [
    "S.r.l.",
    "Srl",
    "S.R.L.",
    "s.r.l",
    "S.p.A.",
    "SPA",
    "S.n.c.",
    "S.a.s.",
    "S.a.p.a.",
    "Srls",
    "S.r.l.s.",
    "S.r.l. semplificata",
    "S.r.l. unipersonale",
    "Soc. Coop.",
    "Soc. Coop. a r.l.",
    "Società cooperativa",
    "& C.",
    "e C.",
    "& C. S.n.c.",
    "e C. Sas",
]
PLAIN = str.maketrans("àèéìòù", "aeeiou")
words = st.text(alphabet="abcdefghilmnopqrstuvzàèéìòù", min_size=2, max_size=12)
names = st.lists(words, min_size=1, max_size=4).map(" ".join)


# --- the rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("Rossi Mario S.r.l.", "rossi mario"),
        ("ROSSI MARIO SRL", "rossi mario"),
        ("Rossi Mario & C. S.n.c.", "rossi mario"),
        ("Rossi Mario e C. s.a.s.", "rossi mario"),
        ("Rossi M. S.r.l.", "rossi m"),
        ("Caffè Città S.R.L.S.", "caffe citta"),
        ("Soc. Coop. a r.l. Il Girasole", "il girasole"),
        ("Il Girasole Società Cooperativa", "il girasole"),
        ("F.lli Bianchi S.p.A.", "fratelli bianchi"),
        ("D'Angelo Impianti - S.a.s.", "dangelo impianti"),
        ("Verdi S.r.l. in liquidazione", "verdi"),
        ("S.r.l.", ""),
    ],
)
def test_names_read_alike_once_case_accents_punctuation_and_legal_forms_are_set_aside(
    written, read
):
    assert normalised_name(written) == read


@given(names, st.sampled_from(LEGAL_FORMS), st.booleans())
def test_adding_a_legal_form_never_changes_the_normalised_name(name, form, upper):
    written = f"{name} {form}"
    assert normalised_name(written.upper() if upper else written) == normalised_name(name)


@given(st.text(alphabet="abcdefghilmnopqrstuvzàèéìòù .,'&-", max_size=40))
def test_case_and_accents_never_change_the_normalised_name_or_the_block(name):
    plain = name.translate(PLAIN)
    assert normalised_name(name.upper()) == normalised_name(plain) == normalised_name(name)
    assert name_block(name.upper()) == name_block(plain) == name_block(name)


@given(st.text())
def test_any_text_has_a_block_that_fits_its_column_or_none(name):
    block = name_block(name)
    assert block is None or 0 < len(block) <= NAME_BLOCK_LENGTH
    searched = blocks_to_search(name)
    assert searched[:1] == ([] if block is None else [block])
    assert all(len(other) <= NAME_BLOCK_LENGTH for other in searched)


def test_the_block_is_the_telling_word_whatever_the_order_and_the_trade():
    assert name_block("Rossi Mario S.r.l.") == name_block("MARIO ROSSI") == "rosi"
    assert name_block("Farmacia Rossi") == name_block("Studio Legale Rosi") == "rosi"
    assert name_block("Impresa Edile Ferrari Giuseppe") == "ferari"
    assert name_block("Studio Legale Associato") == "asociato"  # nothing telling: the longest
    assert name_block("S.r.l.") is None


def test_a_name_with_a_letter_dropped_two_swapped_or_a_space_lost_is_searched_too():
    searched = blocks_to_search("Brambilla Mario S.r.l.")
    assert name_block("Bramilla Mario") in searched
    assert name_block("Brmabilla Mario") in searched
    assert name_block("Bianchi Mario") not in searched
    assert name_block("Dallavalle Srl") in blocks_to_search("Dalla Valle S.r.l.")


# --- the look-up -------------------------------------------------------------------


async def look_up(sessions, vat: str, name: str, **options) -> list[SimilarCustomer]:
    async with sessions() as session:
        return await similar_customers(session=session, vat=vat, name=name, today=TODAY, **options)


async def test_a_name_written_another_way_is_found_under_another_vat_and_not_itself(
    sessions, rules, tmp_path
):
    await add_purchases(
        sessions,
        rules,
        tmp_path,
        f"{VATS[0]},Rossi Mario S.r.l.,2026-06-01\n{VATS[1]},ROSSI MARIO SRL,2026-05-01\n",
    )
    found = await look_up(sessions, VATS[0], "Rossi Mario S.r.l.")
    assert found == [SimilarCustomer(vat=VATS[1], name="ROSSI MARIO SRL", score=100, holder=None)]


async def test_a_protected_customer_is_shown_with_the_partner_holding_it(sessions, rules, tmp_path):
    await add_partners(sessions, rules, tmp_path, "ACME,Acme Informatica,gold\n")
    await add_purchases(
        sessions,
        rules,
        tmp_path,
        f"{VATS[0]},Rossi Mario S.r.l.,2026-06-01\n{VATS[1]},ROSSI MARIO SRL,{LONG_AGO}\n",
    )
    acme = await link_salesperson(sessions, "ACME", 1001)
    registration = await register(sessions, rules, acme, VATS[1])
    [found] = await look_up(sessions, VATS[0], "Rossi Mario S.r.l.")
    assert (found.vat, found.name) == (VATS[1], "ROSSI MARIO SRL")  # once, the vendor's name
    assert found.holder == SimilarHolder(
        partner_code="ACME",
        company="Acme Informatica",
        reference=registration.reference,
        until=registration.protected_until,
    )


async def test_a_name_a_partner_typed_counts_while_it_protects_and_not_after(
    sessions, rules, tmp_path
):
    await add_partners(sessions, rules, tmp_path, "ACME,Acme Informatica,gold\n")
    await add_purchases(sessions, rules, tmp_path, f"{VATS[0]},Rossi Mario S.r.l.,2026-06-01\n")
    acme = await link_salesperson(sessions, "ACME", 1001)
    # Neither is in the vendor's history: their names are the ones typed.
    protecting = await register(sessions, rules, acme, VATS[2], name="Mario Rossi Srl")
    await register(
        sessions, rules, acme, VATS[3], name="Rossi Mario", now=NOW - dt.timedelta(days=120)
    )
    found = await look_up(sessions, VATS[0], "Rossi Mario S.r.l.")
    assert [(f.vat, f.name, f.score) for f in found] == [(VATS[2], "Mario Rossi Srl", 100)]
    assert found[0].holder is not None
    assert found[0].holder.reference == protecting.reference


async def test_a_clearly_different_name_is_not_listed_even_in_the_same_block(
    sessions, rules, tmp_path
):
    await add_purchases(
        sessions,
        rules,
        tmp_path,
        f"{VATS[1]},Brambilla Costruzioni Srl,2026-06-01\n{VATS[2]},Bianchi Luigi,2026-06-01\n",
    )
    assert name_block("Brambilla Costruzioni Srl") == name_block("Brambilla Mario")
    assert await look_up(sessions, VATS[0], "Brambilla Mario S.r.l.") == []


async def test_at_most_three_are_listed_best_first(sessions, rules, tmp_path):
    await add_purchases(
        sessions,
        rules,
        tmp_path,
        f"{VATS[1]},BRAMBILLA MARIO SRL,2026-06-01\n"
        f"{VATS[2]},Brambilla Marioo Snc,2026-06-01\n"  # 96
        f"{VATS[3]},Mario Brambilla & C. S.a.s.,2026-06-01\n"  # 100
        f"{VATS[4]},Brambila Mariano,2026-06-01\n"  # 90
        f"{VATS[5]},Bramilla Mario,2026-06-01\n",  # 96, in a near block
    )
    found = await look_up(sessions, VATS[0], "Brambilla Mario S.r.l.")
    assert [(f.vat, f.score) for f in found] == [(VATS[1], 100), (VATS[3], 100), (VATS[2], 96)]
    more = await look_up(sessions, VATS[0], "Brambilla Mario S.r.l.", limit=10)
    assert [f.score for f in more] == [100, 100, 96, 96, 90]
    assert {f.vat for f in more} == set(VATS[1:6])


async def test_a_name_that_is_only_a_legal_form_finds_nothing(sessions, rules, tmp_path):
    await add_purchases(sessions, rules, tmp_path, f"{VATS[1]},S.r.l.,2026-06-01\n")
    assert await look_up(sessions, VATS[0], "S.r.l.") == []


# --- the block is kept with the name -----------------------------------------------


async def test_importing_purchases_fills_the_block_and_a_new_name_moves_it(
    sessions, rules, tmp_path
):
    await add_purchases(sessions, rules, tmp_path, f"{VATS[0]},Rossi Mario S.r.l.,2026-06-01\n")
    assert await stored_blocks(sessions) == {VATS[0]: "rosi"}
    await add_purchases(sessions, rules, tmp_path, f"{VATS[0]},Bianchi Luigi Snc,2026-07-01\n")
    assert await stored_blocks(sessions) == {VATS[0]: "bianchi"}


async def stored_blocks(sessions) -> dict[str, str | None]:
    async with sessions() as session:
        rows = await session.execute(select(Customer.vat, Customer.name_block))
        return {vat: block for vat, block in rows}


def test_the_import_command_stores_each_customers_block(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'pai.db'}")
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_USERNAME", "PAI_RULES_FILE"):
        monkeypatch.delenv(name, raising=False)
    header = "vat,customer_name,purchase_date\n"
    write_csv(
        tmp_path / "purchases.csv",
        f"{header}{VATS[0]},Farmacia Rossi S.r.l.,2026-03-01\n{italian_vat(7)},S.r.l.,2026-03-01\n",
    )
    assert main(["import-purchases", "purchases.csv", "--create"]) == 0
    write_csv(tmp_path / "renamed.csv", f"{header}{VATS[0]},F.lli Bianchi S.p.A.,2026-04-01\n")
    assert main(["import-purchases", "renamed.csv"]) == 0
    capsys.readouterr()
    with sqlite3.connect(tmp_path / "pai.db") as db:
        rows = dict(db.execute("SELECT vat, name_block FROM customer").fetchall())
    assert rows == {VATS[0]: "bianchi", italian_vat(7): None}
