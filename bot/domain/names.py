"""Customers' names as staff compare them: legal forms, case, accents and punctuation
set aside (PRODUCT.md §5, similar names).

`normalised_name` is what the similarity score compares: `Rossi Mario & C. S.r.l.`
and `ROSSI MARIO SRL` both read `rossi mario`. `name_block` is the short key stored
beside every name (customer and registration) and looked up by index; a look-up
reads the rows of the blocks `blocks_to_search` gives, its own and a few near ones,
and scores only those, so it stays fast however many customers the vendor has.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import pairwise

from models import NAME_BLOCK_LENGTH

# Legal forms written as initials, with or without dots: `S.r.l.`, `S.R.L`, `Srl`.
# Dotted ones must have a dot after every letter but the last: `sa s` (a word, then
# an initial) is not `S.a.s.`, and `Rossi M. S.r.l.` keeps its initial. Longest first,
# so that `S.r.l.s.` goes whole.
_INITIALS = ("scarl", "srls", "sapa", "scrl", "srl", "spa", "snc", "sas", "arl")
# Legal forms and their parts written as words, whatever marks stand between them:
# `Soc. Coop.`, `Società cooperativa`, `& C.`, `e C.`, `a r.l.`, `unipersonale`.
_WORD_FORMS = (
    "societa a responsabilita limitata",
    "societa in accomandita per azioni",
    "societa in accomandita semplice",
    "societa in nome collettivo",
    "societa per azioni",
    "a responsabilita limitata",
    "in accomandita per azioni",
    "in accomandita semplice",
    "in nome collettivo",
    "per azioni",
    "a socio unico",
    "in liquidazione",
    "a r l",
    "cooperativa",
    "unipersonale",
    "semplificata",
    "societa",
    "coop",
    "soc",
    "e c",
)
_LEGAL_FORM = re.compile(
    r"(?<![0-9a-z])(?:"
    + "|".join(
        [
            *(f"{form}|" + r"\.\s*".join(form) + r"\.?" for form in _INITIALS),
            *(r"[^0-9a-z]+".join(form.split()) for form in _WORD_FORMS),
        ]
    )
    + r")(?![0-9a-z])"
)
# Apostrophes join an elided article to its word (`D'Angelo` reads `dangelo`, as
# registries that drop the apostrophe write it); every other mark is a space.
_APOSTROPHES = ("'", "`", "\u00b4", "\u2018", "\u2019")
_NOT_A_WORD = re.compile(r"[^0-9a-z]+")
# `F.lli` and `Flli` are how invoices abbreviate `Fratelli`.
_FRATELLI = re.compile(r"\bf ?lli\b")

# Words thousands of unrelated businesses share: the block is never one of them
# unless the name has nothing else.
_LINKING_WORDS = """
    il lo la i gli le l un una uno di da del dello della dei degli delle dal dallo dalla dai
    al allo alla ai agli alle nel nella sul sulla e ed con per tra fra in su a the and of de
"""
_TRADES_AND_TITLES = """
    studio studi associato associati associazione legale notarile tecnico commercialista
    medico dentistico dentista veterinario farmacia parafarmacia ristorante pizzeria
    trattoria osteria bar caffe pasticceria gelateria panificio forno macelleria salumeria
    alimentari market minimarket supermercato hotel albergo residence bed breakfast camping
    agriturismo azienda agricola impresa imprese edile edili edil edilizia costruzioni
    impianti impiantistica elettrici elettrica idraulica idraulici termoidraulica officina
    autofficina carrozzeria autoricambi ricambi gommista trasporti logistica spedizioni
    fratelli figli eredi ditta gruppo group holding italia italiana italiano service
    services servizi commerciale commercio ingrosso distribuzione consulting consulenze
    consulenza informatica tecnologie sistemi system systems solutions international
    immobiliare agenzia centro negozio tabacchi tabaccheria parrucchiere parrucchiera
    estetica ottica profumeria abbigliamento calzature ferramenta colorificio mobili
    arredamenti falegnameria tipografia autoscuola lavanderia onlus aps asd ssd
    dott dr ing arch avv geom rag sig sigra
"""
# Ditte individuali are `Rossi Mario` as often as `Mario Rossi`: the surname is the key.
_FIRST_NAMES = """
    mario giuseppe giovanni antonio luigi francesco paolo marco andrea luca roberto
    stefano alessandro angelo salvatore vincenzo pietro carlo franco domenico bruno
    michele massimo claudio sergio enrico fabio giorgio davide simone matteo lorenzo
    alberto gianni raffaele nicola riccardo maurizio giorgia maria anna giuseppina rosa
    angela giovanna teresa lucia carmela caterina francesca laura elena sara giulia
    chiara paola silvia valentina federica alessandra cristina barbara
"""
# A letter written twice or more, written once: typists double and undouble them.
_REPEATED_LETTER = re.compile(r"(?<=([a-z]))\1+")
_GENERIC = frozenset(
    _REPEATED_LETTER.sub("", word)
    for word in (_LINKING_WORDS + _TRADES_AND_TITLES + _FIRST_NAMES).split()
)


def normalised_name(name: str) -> str:
    """The name with case, accents, punctuation and Italian legal forms set aside.

    `Rossi Mario & C. S.r.l.`, `ROSSI MARIO SRL` and `Rossi Mario Società
    cooperativa` all read `rossi mario`; `F.lli Bianchi S.p.A.` reads
    `fratelli bianchi`. A name that is nothing but a legal form reads ``.
    """
    # The look-up normalises every name in a block: each step is skipped when it has
    # nothing to do, and the legal forms go in one pass.
    plain = (name if name.isascii() else _without_accents(name)).casefold()
    for apostrophe in _APOSTROPHES:
        if apostrophe in plain:
            plain = plain.replace(apostrophe, "")
    if "&" in plain:
        plain = plain.replace("&", " e ")
    plain = _LEGAL_FORM.sub(" ", plain)
    if not (plain.isascii() and plain.replace(" ", "").isalnum()):
        plain = _NOT_A_WORD.sub(" ", plain)
    if "lli" in plain:
        plain = _FRATELLI.sub("fratelli", plain)
    return " ".join(plain.split())


def name_block(name: str) -> str | None:
    """The key stored beside a name, or None for a name with no word left.

    Chosen: the longest word of the normalised name that is not generic (not an
    article, a trade like `farmacia` or `impresa edile`, or a common first name),
    ties to the alphabetically first, with doubled letters written once (`Rossi`,
    `Rosi` -> `rosi`); a name of generic words only takes the longest of them.
    Longest, because it is the rarest-looking word: in bench/similar.py's million
    customers a random customer's block holds ~80 rows (p95 ~1,300), where a first
    word (`studio`, `bar`, `f.lli`) would make blocks of tens of thousands. Blind to
    word order, like the score (`Rossi Mario` = `Mario Rossi`).

    Known misses, even with the near blocks a look-up adds (`blocks_to_search`):
    a letter replaced in the chosen word (`Bianchi`/`Bianshi`); a letter dropped
    from it, or a space, looked up from the shorter side (`Bianci` does not find
    `Bianchi`, `Dallavalle` does not find `Dalla Valle`; the reverse works); a word
    grown long enough to become the key (`Rossi Mario`/`Rossi Mariano`: found only
    from the latter); an abbreviation of the chosen word. And a generic word missing
    from the lists above that is longer than the name's own (`Elettrauto Neri`) puts
    a whole trade in one block, of which a look-up reads only the first rows
    (bot/services/similar.py's cap).
    """
    return _key(_folded_words(name))


def blocks_to_search(name: str) -> list[str]:
    """The blocks a look-up for `name` reads, its own first: then every other telling
    word's; each telling word of 5 letters or more with one letter dropped or two
    neighbours swapped; and each two neighbouring words written as one. So a name
    with one such slip (or one whose slip changed which word is longest) still finds
    the original; a dropped letter or a lost space is found from the original's side
    (`Bianchi` finds `Bianci`, `Dalla Valle` finds `Dallavalle`). About 15 blocks,
    each one index look-up; most hold nothing."""
    words = _folded_words(name)
    own = _key(words)
    if own is None:
        return []
    near: set[str] = set()
    for word in _telling(words):
        near.add(word)
        if len(word) >= 5:
            dropped = (word[:i] + word[i + 1 :] for i in range(len(word)))
            swapped = (
                word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)
            )
            near.update(_REPEATED_LETTER.sub("", slip) for slip in (*dropped, *swapped))
    near.update(_REPEATED_LETTER.sub("", first + second) for first, second in pairwise(words))
    near = {block[:NAME_BLOCK_LENGTH] for block in near}
    near.discard(own)
    return [own, *sorted(near)]


def _folded_words(name: str) -> list[str]:
    return _REPEATED_LETTER.sub("", normalised_name(name)).split()


def _telling(words: list[str]) -> list[str]:
    return [word for word in words if word not in _GENERIC]


def _key(words: list[str]) -> str | None:
    if not words:
        return None
    chosen = min(_telling(words) or words, key=lambda word: (-len(word), word))
    return chosen[:NAME_BLOCK_LENGTH]


def _without_accents(text: str) -> str:
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
