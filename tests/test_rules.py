"""The programme rules of PRODUCT.md §1, table by table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.domain.errors import NoIncentiveInForce, RulesError
from bot.domain.rules import (
    ReminderRules,
    first_new_day,
    is_new_customer,
    load_rules,
    lookback_cutoff,
    loyalty_standing,
    loyalty_window,
    months_before,
    next_allowed_moment,
    protection_until,
    quote_incentive,
    sending_allowed,
    version_in_force,
)

RULES = load_rules()
D = dt.date


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (D(2026, 11, 28), 6, D(2026, 5, 28)),
        (D(2026, 8, 31), 6, D(2026, 2, 28)),  # 31 February does not exist: clamp
        (D(2028, 8, 31), 6, D(2028, 2, 29)),  # leap year keeps the 29th
        (D(2026, 3, 31), 1, D(2026, 2, 28)),
        (D(2026, 1, 15), 6, D(2025, 7, 15)),  # across the year boundary
        (D(2026, 12, 31), 6, D(2026, 6, 30)),
        (D(2026, 5, 31), 12, D(2025, 5, 31)),
    ],
)
def test_months_before_clamps_to_the_last_day_of_the_month(day, months, expected):
    assert months_before(day, months) == expected


@pytest.mark.parametrize(
    ("last_purchase", "registered_on", "is_new"),
    [
        (None, D(2026, 11, 28), True),
        (D(2026, 5, 28), D(2026, 11, 28), False),  # exactly six months: not new
        (D(2026, 5, 27), D(2026, 11, 28), True),  # the day before: new
        (D(2026, 11, 28), D(2026, 11, 28), False),  # bought today
        (D(2026, 2, 28), D(2026, 8, 31), False),  # clamped cut-off itself
        (D(2026, 2, 27), D(2026, 8, 31), True),
        (D(2020, 1, 1), D(2026, 11, 28), True),
    ],
)
def test_customer_is_new_only_without_a_purchase_on_or_after_the_cutoff(
    last_purchase, registered_on, is_new
):
    assert is_new_customer(RULES, last_purchase=last_purchase, on=registered_on) is is_new


def test_customer_who_bought_exactly_six_months_ago_is_not_new():
    day = D(2026, 11, 28)
    assert lookback_cutoff(RULES, day) == D(2026, 5, 28)
    assert not is_new_customer(RULES, last_purchase=D(2026, 5, 28), on=day)


@pytest.mark.parametrize(
    ("last_purchase", "first_new"),
    [
        (D(2026, 5, 28), D(2026, 11, 29)),
        (D(2026, 2, 28), D(2026, 9, 1)),  # 29-31 August still look back to 28 February
        (D(2025, 12, 31), D(2026, 7, 1)),
    ],
)
def test_first_new_day_is_the_day_the_lookback_passes_the_last_purchase(last_purchase, first_new):
    assert first_new_day(RULES, last_purchase) == first_new
    assert not is_new_customer(
        RULES, last_purchase=last_purchase, on=first_new - dt.timedelta(days=1)
    )
    assert is_new_customer(RULES, last_purchase=last_purchase, on=first_new)


def test_protection_lasts_protection_days_from_registration():
    assert protection_until(RULES, D(2026, 11, 28)) == D(2027, 2, 26)


def test_loyalty_window_runs_from_window_days_before_to_the_registration_date_itself():
    assert loyalty_window(RULES, D(2026, 11, 28)) == (D(2025, 11, 28), D(2026, 11, 28))


@pytest.mark.parametrize(
    ("earlier", "more", "multiplier"),
    [(0, 3, "1.1"), (2, 1, "1.1"), (3, 3, "1.25"), (11, 1, "1.5"), (12, None, None)],
)
def test_a_quote_names_how_many_more_registrations_reach_the_next_step(earlier, more, multiplier):
    quote = quote_incentive(RULES, on=D(2026, 11, 28), level="gold", earlier_registrations=earlier)
    assert quote.registrations_to_next_step == more
    if multiplier is None:
        assert quote.next_step is None
    else:
        assert quote.next_step is not None
        assert quote.next_step.multiplier == Decimal(multiplier)


def test_a_fixed_amount_has_no_next_step():
    quote = quote_incentive(RULES, on=D(2025, 1, 10), level="gold", earlier_registrations=0)
    assert quote.next_step is None


@pytest.mark.parametrize(
    ("day", "version"),
    [
        (D(2024, 1, 1), D(2024, 1, 1)),
        (D(2025, 6, 30), D(2024, 1, 1)),
        (D(2025, 7, 1), D(2025, 7, 1)),
        (D(2026, 11, 28), D(2025, 7, 1)),
    ],
)
def test_registration_uses_the_latest_version_effective_on_its_date(day, version):
    assert version_in_force(RULES, day).effective_from == version


def test_no_version_before_the_first_effective_date():
    with pytest.raises(NoIncentiveInForce):
        version_in_force(RULES, D(2023, 12, 31))


def test_fixed_version_pays_the_same_to_every_level_without_loyalty():
    for level in RULES.levels:
        quote = quote_incentive(RULES, on=D(2025, 1, 10), level=level, earlier_registrations=20)
        assert quote.amount == Decimal("200.00")
        assert quote.loyalty_multiplier is None
        assert quote.version == D(2024, 1, 1)


@pytest.mark.parametrize(
    ("level", "earlier", "amount", "step"),
    [
        ("gold", 0, "500.00", 0),
        ("gold", 2, "500.00", 0),
        ("gold", 3, "550.00", 3),
        ("gold", 5, "550.00", 3),
        ("gold", 6, "625.00", 6),
        ("gold", 11, "625.00", 6),
        ("gold", 12, "750.00", 12),
        ("gold", 400, "750.00", 12),
        ("certified", 0, "300.00", 0),
        ("certified", 3, "330.00", 3),
        ("certified", 6, "375.00", 6),
        ("registered", 0, "150.00", 0),
        ("registered", 3, "165.00", 3),
        ("registered", 12, "225.00", 12),
    ],
)
def test_scaled_quote_is_level_amount_times_loyalty_multiplier(level, earlier, amount, step):
    quote = quote_incentive(RULES, on=D(2026, 11, 28), level=level, earlier_registrations=earlier)
    assert quote.amount == Decimal(amount)
    assert quote.loyalty_min_registrations == step
    assert quote.version == D(2025, 7, 1)
    assert quote.currency == "EUR"


def rules_with(tmp_path: Path, incentives: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[programme]
name = "Test"
currency = "EUR"
country = "IT"
timezone = "Europe/Rome"
levels = ["gold", "certified"]
lookback_months = 6
protection_days = 90
loyalty_window_days = 365
"""
        + incentives,
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("gold", "multiplier", "expected"),
    [
        ("100.005", "1", "100.01"),  # half-up, not banker's rounding
        ("100.015", "1", "100.02"),
        ("100.004", "1", "100.00"),
        ("333.33", "1.15", "383.33"),  # 383.3295
        ("0.05", "1.1", "0.06"),  # 0.055
    ],
)
def test_amounts_round_half_up_to_cents(tmp_path, gold, multiplier, expected):
    path = rules_with(
        tmp_path,
        f"""
[[incentives]]
effective_from = 2024-01-01
levels = {{ gold = {gold}, certified = 1 }}
loyalty = [{{ min_registrations = 0, multiplier = {multiplier} }}]
""",
    )
    rules = load_rules(path)
    quote = quote_incentive(rules, on=D(2026, 1, 1), level="gold", earlier_registrations=0)
    assert quote.amount == Decimal(expected)


def test_versions_are_chosen_by_date_whatever_their_order_in_the_file(tmp_path):
    path = rules_with(
        tmp_path,
        """
[[incentives]]
effective_from = 2026-01-01
fixed = 300
[[incentives]]
effective_from = 2024-01-01
fixed = 100
""",
    )
    rules = load_rules(path)
    assert (
        quote_incentive(rules, on=D(2025, 12, 31), level="gold", earlier_registrations=0).amount
        == 100
    )
    assert (
        quote_incentive(rules, on=D(2026, 1, 1), level="gold", earlier_registrations=0).amount
        == 300
    )


@pytest.mark.parametrize(
    ("incentives", "message"),
    [
        ("", "at least one"),
        ("[[incentives]]\neffective_from = 2024-01-01\n", "either fixed or levels"),
        ("[[incentives]]\neffective_from = 2024-01-01\nlevels = { gold = 1 }\n", "each of"),
        ("[[incentives]]\neffective_from = 2024-01-01\nfixed = -5\n", "negative"),
        ("[[incentives]]\nfixed = 5\n", "effective_from"),
        (
            "[[incentives]]\neffective_from = 2024-01-01\nfixed = 1\n"
            "[[incentives]]\neffective_from = 2024-01-01\nfixed = 2\n",
            "same effective_from",
        ),
    ],
)
def test_inconsistent_rules_files_are_refused_with_a_reason(tmp_path, incentives, message):
    with pytest.raises(RulesError, match=message):
        load_rules(rules_with(tmp_path, incentives))


def test_missing_rules_file_is_a_rules_error(tmp_path):
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "nope.toml")


def test_programme_today_is_in_the_programme_time_zone():
    late_evening_utc = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)
    assert RULES.today(late_evening_utc) == D(2027, 1, 1)  # already new year in Rome


# --- reminders: when the bot may write first --------------------------------------

ROME = ZoneInfo("Europe/Rome")


def rome(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ROME)


def test_the_reminders_section_has_defaults_when_absent(tmp_path):
    rules = load_rules(
        rules_with(tmp_path, "[[incentives]]\neffective_from = 2024-01-01\nfixed = 1")
    )
    assert rules.reminders == ReminderRules()
    assert RULES.reminders.quiet_hours() == "19:00-09:00"


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (rome(2026, 11, 24, 9, 0), True),  # a Tuesday, as quiet hours end
        (rome(2026, 11, 24, 8, 59), False),
        (rome(2026, 11, 24, 18, 59), True),
        (rome(2026, 11, 24, 19, 0), False),
        (rome(2026, 11, 24, 23, 30), False),
        (rome(2026, 11, 28, 11, 0), False),  # Saturday
        (rome(2026, 11, 29, 11, 0), False),  # Sunday
    ],
)
def test_the_bot_writes_first_only_outside_quiet_hours_on_weekdays(moment, allowed):
    assert sending_allowed(RULES, moment) is allowed


@pytest.mark.parametrize(
    ("moment", "next_moment"),
    [
        (rome(2026, 11, 24, 10, 0), rome(2026, 11, 24, 10, 0)),
        (rome(2026, 11, 24, 20, 0), rome(2026, 11, 25, 9, 0)),
        (rome(2026, 11, 25, 2, 0), rome(2026, 11, 25, 9, 0)),
        (rome(2026, 11, 27, 19, 30), rome(2026, 11, 30, 9, 0)),  # Friday evening: Monday
        (rome(2026, 11, 28, 12, 0), rome(2026, 11, 30, 9, 0)),
    ],
)
def test_a_reminder_due_when_the_bot_must_keep_quiet_goes_at_the_next_allowed_moment(
    moment, next_moment
):
    assert next_allowed_moment(RULES, moment) == next_moment


def test_quiet_hours_within_one_day_and_every_day_allowed(tmp_path):
    rules = load_rules(
        rules_with(
            tmp_path,
            "[[incentives]]\neffective_from = 2024-01-01\nfixed = 1\n"
            '[reminders]\nquiet_hours = "12:00-14:00"\nweekdays_only = false\n',
        )
    )
    assert sending_allowed(rules, rome(2026, 11, 28, 11, 59))
    assert not sending_allowed(rules, rome(2026, 11, 28, 13, 0))
    assert next_allowed_moment(rules, rome(2026, 11, 29, 13, 0)) == rome(2026, 11, 29, 14, 0)


@pytest.mark.parametrize(
    "section", ['quiet_hours = "evenings"', "weekdays_only = 1", "inactivity_days = 0"]
)
def test_a_broken_reminders_section_stops_with_the_reason(tmp_path, section):
    path = rules_with(
        tmp_path, f"[[incentives]]\neffective_from = 2024-01-01\nfixed = 1\n[reminders]\n{section}"
    )
    with pytest.raises(RulesError, match="reminders"):
        load_rules(path)


def test_loyalty_standing_counts_the_window_and_says_what_keeps_the_step():
    today = D(2026, 11, 28)
    dates = [D(2025, 11, 1), D(2026, 3, 14), D(2026, 6, 1), D(2026, 9, 1)]  # first is outside
    standing = loyalty_standing(RULES, today, dates)
    assert (standing.count, standing.multiplier) == (3, Decimal("1.1"))
    # The count falls below 3 when 14 March 2026 leaves the window.
    assert standing.keep_before == D(2027, 3, 15)
    assert standing.registrations_to_next_step == 3
    assert standing.next_step.multiplier == Decimal("1.25")
    empty = loyalty_standing(RULES, today, [])
    assert (empty.count, empty.multiplier, empty.keep_before) == (0, Decimal("1.0"), None)


def test_a_weekday_after_a_weekend_starts_at_midnight_when_quiet_hours_are_midday(tmp_path):
    rules = load_rules(
        rules_with(
            tmp_path,
            "[[incentives]]\neffective_from = 2024-01-01\nfixed = 1\n"
            '[reminders]\nquiet_hours = "12:00-14:00"\n',
        )
    )
    assert next_allowed_moment(rules, rome(2026, 11, 28, 10)) == rome(2026, 11, 30, 0, 0)


def test_a_follow_up_period_as_long_as_protection_is_refused(tmp_path):
    path = rules_with(
        tmp_path,
        "[[incentives]]\neffective_from = 2024-01-01\nfixed = 1\n[reminders]\nfollowup_days = 90",
    )
    with pytest.raises(RulesError, match="followup_days"):
        load_rules(path)
