"""Customers under other VAT numbers whose names look like this one (PRODUCT.md §5).

Staff only: the names come from the vendor's history and from what partners typed,
and the holders are partners' names; nothing here is ever shown to a partner.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import (
    CompoundSelect,
    Date,
    Select,
    String,
    bindparam,
    literal,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.names import blocks_to_search, normalised_name
from bot.services.eligibility import HOLDS
from models import Customer, Partner, Registration

# Scores (0-100) from this one up are similar names.
SIMILARITY = 90
# Rows read for one look-up, from each source (the history, protecting registrations):
# from the name's own block, then from all its near blocks together. A block swollen
# past this (a common surname, a trade missing from the generic words) is compared
# only in part, so that one look-up never reads more than about 3,000 names, ~15 ms.
# bench/similar.py prints how many blocks are that large.
CANDIDATES_PER_BLOCK = 2000
CANDIDATES_NEAR = 1000


@dataclass(frozen=True)
class SimilarHolder:
    """The registration protecting a similar customer today."""

    partner_code: str
    company: str
    reference: str
    until: dt.date


@dataclass(frozen=True)
class SimilarCustomer:
    vat: str
    name: str
    score: int  # 90-100: token_sort_ratio of the normalised names, rounded down
    holder: SimilarHolder | None


def _protects(today: Any) -> Any:
    """A registration protects its customer while it holds the key: to its date, or
    past it while staff have a request for more time before them."""
    return col(Registration.protection_key).is_not(None) & HOLDS(today)


def _candidates_statement() -> CompoundSelect[Any]:
    """Built once: the vendor's names and the names typed on registrations protecting a
    customer, in the name's own block, then in its near ones; never the customer asked
    about. Each part has its cap, so a huge near block cannot crowd out the own one."""
    vat, today = bindparam("vat", type_=String), bindparam("today", type_=Date)
    own = bindparam("own", type_=String)
    near = bindparam("near", type_=String, expanding=True)
    vendor = select(col(Customer.vat), col(Customer.name), literal(True).label("vendor")).where(
        col(Customer.vat) != vat
    )
    typed = select(
        col(Registration.vat), col(Registration.customer_name), literal(False).label("vendor")
    ).where(col(Registration.vat) != vat, _protects(today))
    return union_all(
        _capped(vendor.where(col(Customer.name_block) == own), CANDIDATES_PER_BLOCK),
        _capped(typed.where(col(Registration.name_block) == own), CANDIDATES_PER_BLOCK),
        _capped(vendor.where(col(Customer.name_block).in_(near)), CANDIDATES_NEAR),
        _capped(typed.where(col(Registration.name_block).in_(near)), CANDIDATES_NEAR),
    )


def _capped(part: Select[str, str, bool], rows: int) -> Select[Any]:
    # LIMIT inside a UNION member needs a SELECT of its own on SQLite.
    return select(part.limit(rows).subquery())


_CANDIDATES = _candidates_statement()


async def similar_customers(
    *, session: AsyncSession, vat: str, name: str, today: dt.date, limit: int = 3
) -> list[SimilarCustomer]:
    """Up to `limit` customers under other VAT numbers whose names score >= SIMILARITY
    against `name`, best first, each with the partner protecting it today if any.

    The score is rapidfuzz's `token_sort_ratio` on normalised names: word order set
    aside, because the same firm is `Rossi Mario` in one file and `Mario Rossi` in
    another; a plain `ratio` would score those 55. Only names sharing the block key
    are read, by index (bot/domain/names.py says what the key misses).
    """
    blocks = blocks_to_search(name)
    if not blocks:
        return []
    wanted = normalised_name(name)
    rows = await session.execute(
        _CANDIDATES, {"own": blocks[0], "near": blocks[1:], "vat": vat, "today": today}
    )
    # Per VAT its best-scoring name; on a tie the vendor's rather than a typed one.
    best: dict[str, tuple[float, bool, str]] = {}
    for candidate_vat, candidate_name, vendor in rows:
        score = fuzz.token_sort_ratio(
            wanted, normalised_name(candidate_name), score_cutoff=SIMILARITY
        )
        if score and (score, bool(vendor)) > best.get(candidate_vat, (0.0, False, ""))[:2]:
            best[candidate_vat] = (score, bool(vendor), candidate_name)
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[1][2], item[0]))[:limit]
    holders = await _holders(session, [found for found, _ in ranked], today)
    return [
        SimilarCustomer(vat=found, name=found_name, score=int(score), holder=holders.get(found))
        for found, (score, _vendor, found_name) in ranked
    ]


async def _holders(
    session: AsyncSession, vats: list[str], today: dt.date
) -> dict[str, SimilarHolder]:
    if not vats:
        return {}
    rows = await session.execute(
        select(
            col(Registration.vat),
            col(Partner.code),
            col(Partner.company),
            col(Registration.reference),
            col(Registration.protected_until),
        )
        .join(Partner, col(Partner.id) == col(Registration.partner_id))
        .where(col(Registration.protection_key).in_(vats), _protects(today))
    )
    return {
        found: SimilarHolder(partner_code=code, company=company, reference=reference, until=until)
        for found, code, company, reference, until in rows
    }
