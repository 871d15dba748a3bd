"""The programme's numbers in words, for staff in chat and at a shell alike."""

from __future__ import annotations

from bot.domain.rules import Rules
from bot.i18n import Markup, Texts
from bot.services.stats import Numbers


def numbers_text(texts: Texts, rules: Rules, numbers: Numbers) -> str:
    levels = ", ".join(
        f"{texts.level(level)} {numbers.active_by_level[level]}/{numbers.partners_by_level[level]}"
        for level in rules.levels
    )
    share = numbers.qualified_share
    top = "\n".join(
        texts("stats_top_line", code=code, company=company, count=count)
        for code, company, count in numbers.top_partners
    )
    return texts(
        "stats",
        programme=rules.name,
        today=texts.date(numbers.today),
        levels=levels,
        window=rules.loyalty_window_days,
        month=numbers.registrations_month,
        quarter=numbers.registrations_quarter,
        year=numbers.registrations_year,
        verdicts=numbers.verdicts_year,
        share="-" if share is None else f"{share:.0%}",
        won=numbers.won_year,
        expected=texts.money(numbers.expected, rules.currency),
        approved=texts.money(numbers.approved, rules.currency),
        paid=texts.money(numbers.paid, rules.currency),
        top=Markup(top) if top else "-",  # already escaped, line by line
    )
