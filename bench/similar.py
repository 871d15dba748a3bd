"""Similar-names benchmark: `similar_customers` at 1,000,000 customers on PostgreSQL.

Fills a database of its own with Italian-looking company names (fixed seed:
surnames common and rare, first names, trades, invented brands, legal forms
written every way, and 3% near-duplicates of earlier names under other VAT
numbers) and 20,000 registrations, half of them protecting their customer, half
under the name as the partner typed it with a slip. Then prints p50 and p95 of
`similar_customers`, one session per look-up as the bot does, beside the floor
measured in the same run and on the same driver: the exact-VAT look-up
`select Customer where vat = :vat`; and their ratio. Also: how large the blocks
are (the rows one look-up reads), and how many of the planted near-duplicates
scoring >= 90 a look-up reaches (the key's recall, and what it misses by kind of
change). The figures are only as Italian as the generator below.

    python -m bench.similar [--customers 1000000] [--lookups 200]
        [--url postgresql://postgres@127.0.0.1:5432/pai_bench_similar] [--keep]

The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from rapidfuzz import fuzz
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from sqlmodel import col

from bench import percentile
from bot.domain.names import blocks_to_search, name_block, normalised_name
from bot.services.similar import (
    CANDIDATES_NEAR,
    CANDIDATES_PER_BLOCK,
    SIMILARITY,
    SimilarCustomer,
    similar_customers,
)
from bot.storage.database import make_engine, make_sessions
from bot.storage.schema import create_tables
from models import Customer, Partner, Registration
from tests.factories import italian_vat

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime.combine(TODAY, dt.time(10), tzinfo=dt.UTC)
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/pai_bench_similar"
GOAL_MS = 20.0

# --- names -------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return text.split()


# The commonest Italian surnames, most frequent first (drawn with Zipf weights).
COMMON_SURNAMES = """
Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti
De_Luca Mancini Costa Giordano Rizzo Lombardi Moretti Barbieri Fontana Santoro Mariani
Rinaldi Caruso Ferrara Galli Martini Leone Longo Gentile Martinelli Vitale Lombardo Serra
Coppola De_Santis D'Angelo Marchetti Parisi Villa Conte Ferraro Ferri Fabbri Bianco Marini
Grasso Valentini Messina Sala De_Angelis Gatti Pellegrini Palumbo Sanna Farina Rizzi Monti
Cattaneo Morelli Amato Silvestri Mazza Testa Grassi Pellegrino Carbone Giuliani Benedetti
Barone Rossetti Caputo Montanari Guerra Palmieri Bernardi Martino Fiore De_Rosa Ferretti
Bellini Basile Riva Donati Piras Vitali Battaglia Sartori Neri Costantini Milani Pagano
Ruggiero Sorrentino D'Amico Orlando Negri
""".replace("_", " ").split()
SURNAME_STARTS = words("""
Ba Be Bi Bo Bu Ca Ce Ci Co Cu Da De Di Do Fa Fe Fi Fo Ga Ge Gi Go Gu La Le Li Lo Lu Ma Me
Mi Mo Mu Na Ne Ni No Pa Pe Pi Po Ra Re Ri Ro Ru Sa Se Si So Ta Te Ti To Va Ve Vi Vo Za Zo
Bra Bri Bru Cla Cre Fra Gra Pra Tra Tre Sca Sco Spa Ste Stra Gua Qua Chi Ghe
""")
SURNAME_MIDDLES = words(
    "ba bel ca can col dal del fan gal gat lan man mar mon nar pal ran ret ros san"
)
SURNAME_ENDINGS = words("""
ni ri li ti si lli tti nni rri zzi ssi ndi nti ini elli etti oni ucci ato ano ello esi ardi
aldi one otto
""")
# Commonest first, drawn with Zipf weights; the last ones are not in names.py's list.
FIRST_NAMES = words("""
Giuseppe Giovanni Antonio Mario Luigi Francesco Maria Anna Angelo Vincenzo Pietro
Salvatore Carlo Franco Domenico Paolo Giuseppina Rosa Marco Andrea Luca Roberto Stefano
Alessandro Michele Massimo Claudio Sergio Enrico Fabio Giorgio Davide Angela Giovanna
Teresa Lucia Ugo Gino Renato Emanuele Ottavio Elio Rino Ivo Dario Nadia Loredana Ornella
Tiziana Cesare Ernesto Gianluca Rocco Tommaso Vittorio Alfredo Arturo Carmine Cosimo
""")
# `Vivaio`, `Cantina` and `Elettrauto` are not in names.py's list of generic words: real
# files will have words it does not know, and their blocks grow as large as these.
TRADES = """
Farmacia|Studio|Studio Legale|Studio Tecnico|Ristorante|Pizzeria|Bar|Hotel|Autofficina|
Carrozzeria|Impresa Edile|Edil|Impianti Elettrici|Trasporti|Ferramenta|Panificio|Macelleria|
Ottica|Agenzia Immobiliare|Officina|Termoidraulica|Falegnameria|Tipografia|Parrucchiere|
Azienda Agricola|Autoscuola|Lavanderia|Gelateria|Pasticceria|Studio Dentistico|Agriturismo|
Tabaccheria|Gommista|Vivaio|Cantina|Elettrauto|Costruzioni|Trattoria|Osteria|Alimentari
""".replace("\n", "").split("|")
BRAND_HEADS = words("""
Tecno Edil Termo Idro Elettro Info Eco Agri Mecca Plast Geo Euro Medi Nova Alfa Omega Delta
Sider Metal Auto Moto Bio Pharma Ital Gastro Vini Oleo Casa Arte Logi Print Grafi Color
Legno Marmo Vetro Ferro Acqua Sole Luna Stella Verde Blu Tecna Ortho Dom Clima
""")
BRAND_TAILS = words("""
tech service sistemi plast form nova line med mec lab soft net data pack trade gest tecnica
impianti color style design group italia sud nord center point house mare monti fer
""")
PLACES = words("""
Centrale Sport Milano Roma Torino Napoli Venezia Firenze Bologna Genova Palermo Bari Verona
Padova Trieste Brescia Parma Modena Como Lecco Bergamo Rimini Pesaro Ancona Perugia Pisa
Lucca Siena Arezzo Udine Trento Bolzano Aosta Cuneo Asti Novara Pavia Cremona Mantova
Vicenza Treviso Belluno Rovigo Ferrara Ravenna Forli Cesena Livorno Grosseto Viterbo Latina
Salerno Avellino Caserta Lecce Taranto Brindisi Foggia Potenza Matera Cosenza Catanzaro
Messina Catania Siracusa Ragusa Trapani Cagliari Sassari Nuoro Comunale Moderna Nuova
Vecchia Antica Italia Europa Stazione Duomo Castello Porto Lago Collina Valle Giardino
Gabbiano Aurora Fenice Quercia Olivo Ulivo Girasole Arcobaleno
""")
# (spelling, weight): the same form written the ways files write it.
LEGAL_FORMS = [
    ("S.r.l.", 14), ("Srl", 10), ("S.R.L.", 8), ("SRL", 6), ("s.r.l.", 2),
    ("S.n.c.", 4), ("Snc", 3), ("S.N.C.", 2), ("& C. S.n.c.", 2),
    ("S.a.s.", 3), ("Sas", 2), ("& C. S.a.s.", 2), ("e C. Sas", 1),
    ("S.p.A.", 3), ("Spa", 2), ("S.P.A.", 1),
    ("Srls", 3), ("S.r.l.s.", 2), ("S.r.l. semplificata", 1), ("Srl unipersonale", 1),
    ("Soc. Coop.", 1), ("Società cooperativa", 1), ("Soc. Coop. a r.l.", 1),
    ("", 30),
]  # fmt: skip
NEAR_DUPLICATE_SHARE = 0.03
REGISTRATIONS = 20_000
PARTNERS = 50


@dataclass(frozen=True)
class Names:
    rows: list[str]
    # (original row, its near-duplicate's row, how the duplicate was made)
    planted: list[tuple[int, int, str]]


class NameMaker:
    """Italian-looking company names from a fixed seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        invented = sorted(
            {start + end for start in SURNAME_STARTS for end in SURNAME_ENDINGS}
            | {
                start + middle + end
                for start in SURNAME_STARTS
                for middle in SURNAME_MIDDLES
                for end in SURNAME_ENDINGS
            }
        )
        rng.shuffle(invented)
        # A few thousand fairly common surnames, then a long tail of rare ones.
        self.middling, self.rare = invented[:3000], invented[3000:]
        self.common_weights = [1 / rank**0.6 for rank in range(1, len(COMMON_SURNAMES) + 1)]
        self.first_name_weights = [1 / rank for rank in range(1, len(FIRST_NAMES) + 1)]
        self.legal_spellings = [form for form, _ in LEGAL_FORMS]
        self.legal_weights = [weight for _, weight in LEGAL_FORMS]

    def surname(self) -> str:
        rng, draw = self.rng, self.rng.random()
        if draw < 0.05:
            return rng.choices(COMMON_SURNAMES, self.common_weights)[0]
        if draw < 0.40:
            return rng.choice(self.middling)
        return rng.choice(self.rare)

    def brand(self) -> str:
        rng = self.rng
        head, tail = rng.choice(BRAND_HEADS), rng.choice(BRAND_TAILS)
        return f"{head}{tail}" if rng.random() < 0.7 else f"{head} {tail.capitalize()}"

    def body(self) -> str:
        rng, draw = self.rng, self.rng.random()
        if draw < 0.30:  # a ditta individuale
            first_name = rng.choices(FIRST_NAMES, self.first_name_weights)[0]
            person = f"{self.surname()} {first_name}"
            if rng.random() < 0.2:
                person = " ".join(reversed(person.split(" ", 1)))
            return f"{rng.choice(TRADES)} {person}" if rng.random() < 0.3 else person
        if draw < 0.55:
            return f"{rng.choice(TRADES)} {self.surname()}"
        if draw < 0.67:
            pattern = rng.randrange(4)
            if pattern == 0:
                return f"{self.surname()} & {self.surname()}"
            if pattern == 1:
                return f"{rng.choice(['F.lli', 'Fratelli', 'F.LLI'])} {self.surname()}"
            if pattern == 2:
                return f"{self.surname()} {self.surname()}"
            return f"{self.surname()} {rng.choice(TRADES)}"
        if draw < 0.95:
            brand = self.brand()
            return f"{brand} {rng.choice(PLACES)}" if rng.random() < 0.15 else brand
        return f"{rng.choice(TRADES)} {rng.choice(PLACES)}"

    def name(self) -> str:
        rng = self.rng
        legal = rng.choices(self.legal_spellings, self.legal_weights)[0]
        name = f"{self.body()} {legal}".strip()
        return name.upper() if rng.random() < 0.3 else name

    def near_duplicate(self, name: str) -> tuple[str, str]:
        """The name as another file (or another firm) writes it, and how it differs."""
        rng = self.rng
        kind = rng.choice(["legal", "case", "order", "double", "typo", "space", "ampersand"])
        words = name.split()
        if kind == "legal":
            body = normalised_name(name).title()
            legal = rng.choices(self.legal_spellings, self.legal_weights)[0]
            return f"{body} {legal}".strip(), kind
        if kind == "case":
            return (name.lower() if name.isupper() else name.upper()), kind
        if kind == "order" and len(words) >= 2:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
            return " ".join(words), kind
        letters = [i for i, ch in enumerate(name) if ch.isalpha()]
        if kind == "double" and letters:
            i = rng.choice(letters)
            if i + 1 < len(name) and name[i + 1] == name[i]:
                return name[:i] + name[i + 1 :], kind
            return name[: i + 1] + name[i] + name[i + 1 :], kind
        if kind == "space" and len(words) >= 2:
            i = rng.randrange(len(words) - 1)
            return " ".join([*words[:i], words[i] + words[i + 1].lower(), *words[i + 2 :]]), kind
        if kind == "ampersand" and ("&" in name or " e " in name or "Fratelli" in name):
            swapped = name.replace(" & ", " e ") if "&" in name else name.replace(" e ", " & ")
            return swapped.replace("Fratelli", "F.lli"), kind
        # A typo: a letter replaced, dropped, added or swapped with the next.
        i = rng.choice(letters)
        letter = rng.choice("abcdefghilmnoprstuvz")
        change = rng.randrange(4)
        if change == 0:
            typo = name[:i] + letter + name[i + 1 :]
        elif change == 1:
            typo = name[:i] + name[i + 1 :]
        elif change == 2:
            typo = name[:i] + letter + name[i:]
        else:
            typo = name[:i] + name[i + 1 : i + 2] + name[i] + name[i + 2 :]
        return typo, "typo"


def make_names(count: int, seed: int = 7) -> Names:
    maker = NameMaker(seed)
    rows: list[str] = []
    planted: list[tuple[int, int, str]] = []
    for index in range(count):
        if index > 1000 and maker.rng.random() < NEAR_DUPLICATE_SHARE:
            original = maker.rng.randrange(index)
            name, kind = maker.near_duplicate(rows[original])
            rows.append(name)
            planted.append((original, index, kind))
        else:
            rows.append(maker.name())
    return Names(rows, planted)


# --- the database --------------------------------------------------------------------


def plain_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


async def fresh_database(url: str) -> None:
    target = make_url(url)
    admin = await asyncpg.connect(plain_url(str(target.set(database="postgres"))))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()


async def drop_database(url: str) -> None:
    target = make_url(url)
    admin = await asyncpg.connect(plain_url(str(target.set(database="postgres"))))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    finally:
        await admin.close()


async def seed(url: str, names: Names, blocks: list[str | None]) -> None:
    """Customers by COPY, then partners and registrations through the models."""
    vats = [italian_vat(index) for index in range(len(names.rows))]
    connection = await asyncpg.connect(plain_url(url))
    try:
        await connection.copy_records_to_table(
            "customer",
            records=zip(vats, names.rows, blocks, strict=True),
            columns=["vat", "name", "name_block"],
        )
    finally:
        await connection.close()
    rng = random.Random(13)
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            insert(Partner),
            [
                {
                    "id": number,
                    "code": f"P{number:03d}",
                    "company": f"Partner {number} Srl",
                    "level": "gold",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for number in range(1, PARTNERS + 1)
            ],
        )
        registered = rng.sample(range(len(vats)), REGISTRATIONS)
        maker = NameMaker(17)
        rows = []
        for number, customer in enumerate(registered):
            protecting = number % 2 == 0
            day = TODAY - dt.timedelta(days=rng.randrange(1, 80 if protecting else 400))
            typed = (
                maker.near_duplicate(names.rows[customer])[0]
                if rng.random() < 0.5
                else names.rows[customer]
            )
            rows.append(
                {
                    "reference": f"PAI-{number:06d}",
                    "partner_id": rng.randrange(1, PARTNERS + 1),
                    "vat": vats[customer],
                    "customer_name": typed,
                    "name_block": name_block(typed),
                    "registered_on": day,
                    "created_at": NOW,
                    "updated_at": NOW,
                    "protected_until": day + dt.timedelta(days=90 if protecting else 1),
                    "protection_key": vats[customer] if protecting else None,
                    "status": "qualified" if protecting else "expired",
                    "deal_value": Decimal("10000.00"),
                    "product": "Suite",
                    "expected_close": day + dt.timedelta(days=60),
                    "incentive_amount": Decimal("500.00"),
                    "currency": "EUR",
                    "incentive_version": dt.date(2025, 7, 1),
                    "level": "gold",
                    "loyalty_count": 0,
                }
            )
        await connection.execute(insert(Registration), rows)
        await connection.exec_driver_sql("ANALYZE")
    await engine.dispose()


# --- the measures ----------------------------------------------------------------------


def key_recall(names: Names, blocks: list[str | None]) -> None:
    """How many planted near-duplicates scoring >= 90 a look-up reaches: same block, or
    one of the near blocks it also reads, from the duplicate's side or either side."""
    similar: Counter[str] = Counter()
    same: Counter[str] = Counter()
    reached: Counter[str] = Counter()
    either: Counter[str] = Counter()
    for original, duplicate, kind in names.planted:
        first, second = names.rows[original], names.rows[duplicate]
        if score(first, second) < SIMILARITY:
            continue
        similar[kind] += 1
        same[kind] += blocks[original] == blocks[duplicate]
        forward = blocks[original] in blocks_to_search(second)
        reached[kind] += forward
        either[kind] += forward or blocks[duplicate] in blocks_to_search(first)
    total = sum(similar.values())
    print(f"planted near-duplicates scoring >= {SIMILARITY}: {total:,}")
    print(
        f"  same block {sum(same.values()) / total:.1%}; reached by the look-up "
        f"{sum(reached.values()) / total:.1%}, from either side {sum(either.values()) / total:.1%}"
    )
    for kind in sorted(similar):
        print(
            f"    {kind:<10} {similar[kind]:>6,}: same block {same[kind] / similar[kind]:>4.0%}, "
            f"reached {reached[kind] / similar[kind]:>4.0%}, "
            f"either side {either[kind] / similar[kind]:>4.0%}"
        )


def block_sizes(blocks: list[str | None]) -> Counter[str]:
    sizes: Counter[str] = Counter(block for block in blocks if block is not None)
    rows = sum(sizes.values())
    # What a look-up reads is the block of the name looked up: a big block is hit often.
    weighted = sorted(size for size in sizes.values() for _ in range(size))
    over = sorted(block for block, size in sizes.items() if size > CANDIDATES_PER_BLOCK)
    [(largest, largest_size)] = sizes.most_common(1)
    print(f"blocks: {len(sizes):,} for {rows:,} named customers")
    print(
        f"  rows in the block of a random customer: p50 {ranked(weighted, 0.5):,}, "
        f"p95 {ranked(weighted, 0.95):,}, p99 {ranked(weighted, 0.99):,}, "
        f"largest {largest_size:,} ({largest!r})"
    )
    print(
        f"  blocks over the cap of {CANDIDATES_PER_BLOCK:,} rows read: {len(over)} "
        f"({', '.join(over[:8])}), holding {sum(sizes[block] for block in over) / rows:.1%} "
        "of customers"
    )
    return sizes


def ranked(values: list[int], fraction: float) -> int:
    """The nearest-rank percentile of whole numbers."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rows_read(sizes: Counter[str], name: str) -> int:
    """The history rows one look-up reads: its own block and its near ones, each capped."""
    own, *near = blocks_to_search(name) or [""]
    return min(sizes.get(own, 0), CANDIDATES_PER_BLOCK) + min(
        sum(sizes.get(block, 0) for block in near), CANDIDATES_NEAR
    )


def score(first: str, second: str) -> float:
    return fuzz.token_sort_ratio(normalised_name(first), normalised_name(second))


@dataclass
class Lookups:
    """Look-ups asked, what they listed, and the seconds of each beside its floor."""

    asked: list[tuple[str, str]]  # (VAT number, name)
    duplicates: list[tuple[int, int, str]]  # the planted ones asked first, as in Names
    results: list[list[SimilarCustomer]]
    similar: list[float]  # seconds of each similar-names look-up
    floor: list[float]  # seconds of each exact-VAT look-up


async def timed_lookups(url: str, names: Names, lookups: int, *, all_known: bool = True) -> Lookups:
    """`lookups` similar-names look-ups, one session each, in runs alternating with the
    floor, the exact-VAT look-up. Customers at random, a quarter of them planted
    near-duplicates. `all_known`: every customer has a row (else the floor may find none,
    as in a data set built from purchases)."""
    rng = random.Random(11)
    # Their originals should be listed, unless three names at least as close fill the list.
    duplicates = rng.sample(names.planted, min(len(names.planted), lookups // 4))
    asked = [(italian_vat(i), names.rows[i]) for i in rng.sample(range(len(names.rows)), lookups)]
    asked[: len(duplicates)] = [
        (italian_vat(duplicate), names.rows[duplicate]) for _, duplicate, _ in duplicates
    ]
    engine = make_engine(url)
    sessions = make_sessions(engine)

    async def look_up(vat: str, name: str) -> list[SimilarCustomer]:
        async with sessions() as session:
            return await similar_customers(session=session, vat=vat, name=name, today=TODAY)

    async def exact(vat: str) -> None:
        async with sessions() as session:
            found = await session.execute(select(Customer).where(col(Customer.vat) == vat))
            if all_known:
                found.one()

    for vat, name in asked[:50]:  # warm the pool, the plans and the caches
        await look_up(vat, name)
        await exact(vat)
    timed = Lookups(asked, duplicates, [], [], [])
    run = 25  # alternating runs: both see the same cache and machine state
    for start in range(0, len(asked), run):
        for vat, name in asked[start : start + run]:
            started = time.perf_counter()
            timed.results.append(await look_up(vat, name))
            timed.similar.append(time.perf_counter() - started)
        for vat, _ in asked[start : start + run]:
            started = time.perf_counter()
            await exact(vat)
            timed.floor.append(time.perf_counter() - started)
    await engine.dispose()
    return timed


async def measure(url: str, names: Names, sizes: Counter[str], lookups: int) -> None:
    timed = await timed_lookups(url, names, lookups)
    asked, duplicates, results = timed.asked, timed.duplicates, timed.results
    similar, floor = timed.similar, timed.floor
    expected = listed = 0
    for (original, duplicate, _), found in zip(duplicates, results, strict=False):
        closeness = score(names.rows[original], names.rows[duplicate])
        if closeness >= SIMILARITY:
            expected += 1
            listed += italian_vat(original) in {f.vat for f in found} or (
                len(found) == 3 and found[-1].score >= int(closeness)
            )
    read = [rows_read(sizes, name) for _, name in asked]
    p50, p95 = percentile(similar, 0.5) * 1e3, percentile(similar, 0.95) * 1e3
    floor_p50, floor_p95 = percentile(floor, 0.5) * 1e3, percentile(floor, 0.95) * 1e3
    print(f"look-ups measured: {len(asked)}")
    print(
        f"  history rows read per look-up: p50 {ranked(read, 0.5):,}, "
        f"p95 {ranked(read, 0.95):,}, max {max(read):,}"
    )
    print(f"  look-ups listing a similar name: {sum(bool(found) for found in results)}")
    print(
        f"  planted near-duplicates whose original was listed (or three as close): "
        f"{listed} of {expected}"
    )
    print(f"similar_customers p50:        {p50:.3f} ms")
    print(f"similar_customers p95:        {p95:.3f} ms   (goal <= {GOAL_MS:.0f} ms)")
    print(f"exact-VAT look-up p50 / p95:  {floor_p50:.3f} / {floor_p95:.3f} ms   (the floor)")
    print(f"ratio p50 / p95:              {p50 / floor_p50:.1f}x / {p95 / floor_p95:.1f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL database to recreate")
    parser.add_argument("--keep", action="store_true", help="leave the database for a rerun")
    args = parser.parse_args()
    started = time.perf_counter()
    names = make_names(args.customers)
    blocks = [name_block(name) for name in names.rows]
    print(f"made {len(names.rows):,} names in {time.perf_counter() - started:.1f} s")
    key_recall(names, blocks)
    sizes = block_sizes(blocks)
    await fresh_database(args.url)
    engine = make_engine(args.url)
    await create_tables(engine)
    await engine.dispose()
    started = time.perf_counter()
    await seed(args.url, names, blocks)
    print(
        f"seeded {args.customers:,} customers, {REGISTRATIONS:,} registrations "
        f"in {time.perf_counter() - started:.1f} s"
    )
    try:
        await measure(args.url, names, sizes, args.lookups)
    finally:
        if not args.keep:
            await drop_database(args.url)


if __name__ == "__main__":
    asyncio.run(main())
