"""What staff read of the programme, in chat and at a shell alike: its numbers in words and
as a chart, and the rows of a file that were not imported."""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING

from bot.domain.parsing import vat_digits_for
from bot.domain.rules import Rules, months_before
from bot.i18n import Markup, Texts, html_to_text
from bot.services.history import HistoryEntry
from bot.services.imports import Rejection
from bot.services.stats import MONTHS_CHARTED, Numbers

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
    return (
        texts(
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
        + "\n"
        + texts(
            "stats_decisions",
            median="-"
            if numbers.decision_median is None
            else duration(texts, numbers.decision_median),
            overdue=numbers.overdue_now,
        )
    )


def duration(texts: Texts, span: dt.timedelta) -> str:
    """ "40 min", "3 h", "2 d": how late an item is, or how long decisions take."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return texts.plain("duration_minutes", count=max(minutes, 0))
    if minutes < 48 * 60:
        return texts.plain("duration_hours", count=minutes // 60)
    return texts.plain("duration_days", count=minutes // (24 * 60))


def chart_png(numbers: Numbers, levels: tuple[str, ...], texts: Texts) -> bytes:
    """Registrations per month stacked by level, and wins as a line: a PNG image."""
    figure = chart(numbers, levels, texts)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def chart(numbers: Numbers, levels: tuple[str, ...], texts: Texts) -> Figure:
    """The chart of /stats, in the reader's language; counts on whole numbers."""
    # A Figure of its own, not pyplot: no global state, so it can be drawn in a thread
    # while the bot goes on answering. Imported here: only /stats pays for matplotlib.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    last = numbers.today.replace(day=1)
    months = [months_before(last, back) for back in range(MONTHS_CHARTED - 1, -1, -1)]
    labels = [f"{m:%m/%y}" for m in months]
    figure = Figure(figsize=(8, 4), dpi=100)
    axes = figure.subplots()
    bottom = [0] * len(months)
    for level in levels:
        heights = [numbers.monthly.get((m, level), 0) for m in months]
        axes.bar(labels, heights, bottom=bottom, label=html_to_text(texts.level(level)))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.plot(
        labels,
        [numbers.monthly_won.get(m, 0) for m in months],
        color="black",
        marker="o",
        label=texts.plain("stats_chart_won"),
    )
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # no half a registration
    axes.set_title(texts.plain("stats_chart_title"))
    axes.set_ylabel(texts.plain("stats_chart_registrations"))
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return figure


def history_text(texts: Texts, entries: list[HistoryEntry]) -> str:
    """A registration's moves in one cell: "2026-11-28 09:30Z won by Mario Rossi (note)"."""
    return "; ".join(
        f"{entry.at.astimezone(dt.UTC):%Y-%m-%d %H:%MZ} {entry.to_status} "
        f"by {texts.actor(entry.by)}" + (f" ({entry.note})" if entry.note else "")
        for entry in entries
    )


def describe_rejection(texts: Texts, rejection: Rejection, *, country: str) -> str:
    """Why a row of a file was not imported, in one plain sentence."""
    values = dict(rejection.values)
    if rejection.problem == "vat":
        why, digits = values.pop("why"), vat_digits_for(country)
        key = f"import_why_{why}"
        if why in ("vat_length", "vat_digits") and digits is not None:
            values["why"] = texts.plain(f"{key}_count", digits=digits)
        else:
            values["why"] = texts.plain(key)
    return texts.plain(f"import_{rejection.problem}", **values)
