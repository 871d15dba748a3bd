"""The programme's rules: newness, protection and the incentive quote.

Pure code: no Telegram, no database. Everything here is a function of the
rules file and of plain values, so the rules can be tested exhaustively.
"""

from __future__ import annotations

import calendar
import datetime as dt
import tomllib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import NoIncentiveInForce, RulesError

CENT = Decimal("0.01")


@dataclass(frozen=True)
class LoyaltyStep:
    min_registrations: int
    multiplier: Decimal


@dataclass(frozen=True)
class IncentiveVersion:
    """One `[[incentives]]` entry: either a fixed amount or a scale by level and loyalty."""

    effective_from: dt.date
    fixed: Decimal | None
    levels: dict[str, Decimal]
    loyalty: tuple[LoyaltyStep, ...]

    def loyalty_step(self, earlier_registrations: int) -> LoyaltyStep | None:
        """Return the highest step whose threshold is not above the count."""
        reached = [s for s in self.loyalty if s.min_registrations <= earlier_registrations]
        return reached[-1] if reached else None

    def next_loyalty_step(self, earlier_registrations: int) -> LoyaltyStep | None:
        """Return the lowest step above the count: what more registrations would reach."""
        ahead = [s for s in self.loyalty if s.min_registrations > earlier_registrations]
        return ahead[0] if ahead else None


@dataclass(frozen=True)
class Rules:
    name: str
    currency: str
    country: str
    timezone: ZoneInfo
    levels: tuple[str, ...]
    lookback_months: int
    protection_days: int
    loyalty_window_days: int
    incentives: tuple[IncentiveVersion, ...]

    def today(self, now: dt.datetime | None = None) -> dt.date:
        """Return the programme's date at `now` (aware), in its own time zone."""
        moment = now if now is not None else dt.datetime.now(dt.UTC)
        return moment.astimezone(self.timezone).date()


@dataclass(frozen=True)
class Quote:
    """The incentive a registration earns, frozen on it when it is made."""

    amount: Decimal
    currency: str
    version: dt.date
    level: str
    loyalty_min_registrations: int | None
    loyalty_multiplier: Decimal | None
    earlier_registrations: int
    # The step more registrations would reach: None at the top, or with a fixed amount.
    next_step: LoyaltyStep | None = None

    @property
    def registrations_to_next_step(self) -> int | None:
        if self.next_step is None:
            return None
        return self.next_step.min_registrations - self.earlier_registrations


def months_before(day: dt.date, months: int) -> dt.date:
    """Return `day` minus calendar months, clamping to the month's last day."""
    index = day.year * 12 + (day.month - 1) - months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last_day))


def lookback_cutoff(rules: Rules, registered_on: dt.date) -> dt.date:
    """Return C: a purchase dated on or after it makes the customer not new."""
    return months_before(registered_on, rules.lookback_months)


def is_new_customer(rules: Rules, *, last_purchase: dt.date | None, on: dt.date) -> bool:
    return last_purchase is None or last_purchase < lookback_cutoff(rules, on)


def first_new_day(rules: Rules, last_purchase: dt.date) -> dt.date:
    """The first registration date on which a customer who last bought then counts as new."""
    # Month-end clamping makes the cut-off stand still for a few days (31, 30, 29
    # August all look back to 28 February), so step day by day: at most ~200 steps.
    day = last_purchase + dt.timedelta(days=1)
    while not is_new_customer(rules, last_purchase=last_purchase, on=day):
        day += dt.timedelta(days=1)
    return day


def protection_until(rules: Rules, registered_on: dt.date) -> dt.date:
    return registered_on + dt.timedelta(days=rules.protection_days)


def loyalty_window(rules: Rules, registered_on: dt.date) -> tuple[dt.date, dt.date]:
    """Return [first, last] registration dates counted for loyalty: D - window to D itself.

    D is included: a partner's registrations earlier the same day count, so its
    third registration of a day is quoted with the two before it (PRODUCT.md §1).
    """
    return registered_on - dt.timedelta(days=rules.loyalty_window_days), registered_on


def version_in_force(rules: Rules, on: dt.date) -> IncentiveVersion:
    in_force = [v for v in rules.incentives if v.effective_from <= on]
    if not in_force:
        raise NoIncentiveInForce()
    return in_force[-1]


def quote_incentive(rules: Rules, *, on: dt.date, level: str, earlier_registrations: int) -> Quote:
    """Quote the incentive of a registration made on `on` by a partner of `level`."""
    version = version_in_force(rules, on)
    if version.fixed is not None:
        return Quote(
            amount=version.fixed.quantize(CENT, rounding=ROUND_HALF_UP),
            currency=rules.currency,
            version=version.effective_from,
            level=level,
            loyalty_min_registrations=None,
            loyalty_multiplier=None,
            earlier_registrations=earlier_registrations,
        )
    step = version.loyalty_step(earlier_registrations)
    multiplier = step.multiplier if step else Decimal(1)
    amount = version.levels[level] * multiplier
    return Quote(
        amount=amount.quantize(CENT, rounding=ROUND_HALF_UP),
        currency=rules.currency,
        version=version.effective_from,
        level=level,
        loyalty_min_registrations=step.min_registrations if step else None,
        loyalty_multiplier=multiplier if step else None,
        earlier_registrations=earlier_registrations,
        next_step=version.next_loyalty_step(earlier_registrations),
    )


# --- loading -----------------------------------------------------------------


def load_rules(path: Path | None = None) -> Rules:
    """Read and check the rules file; the built-in one when `path` is None."""
    try:
        if path is None:
            text = resources.files("bot").joinpath("rules.toml").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc.strerror}") from exc
    try:
        # Decimal, not float: 1.1 must stay exactly 1.1 in the money arithmetic.
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"the rules file is not valid TOML: {exc}") from exc
    return parse_rules(data)


def parse_rules(data: dict[str, Any]) -> Rules:
    programme = _table(data, "programme")
    levels = tuple(str(level).lower() for level in _required(programme, "programme", "levels"))
    if not levels or len(set(levels)) != len(levels):
        raise RulesError("programme.levels must list distinct level names, highest first")
    try:
        timezone = ZoneInfo(str(_required(programme, "programme", "timezone")))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RulesError(f"programme.timezone is not a known time zone: {exc}") from exc
    raw_versions = data.get("incentives")
    if not isinstance(raw_versions, list) or not raw_versions:
        raise RulesError("the rules file needs at least one [[incentives]] entry")
    versions = sorted(
        (_parse_version(raw, levels) for raw in raw_versions), key=lambda v: v.effective_from
    )
    dates = [v.effective_from for v in versions]
    if len(set(dates)) != len(dates):
        raise RulesError("two [[incentives]] entries have the same effective_from")
    return Rules(
        name=str(_required(programme, "programme", "name")),
        currency=str(programme.get("currency", "EUR")).upper(),
        country=str(programme.get("country", "IT")).upper(),
        timezone=timezone,
        levels=levels,
        lookback_months=_positive_int(programme, "lookback_months"),
        protection_days=_positive_int(programme, "protection_days"),
        loyalty_window_days=_positive_int(programme, "loyalty_window_days"),
        incentives=tuple(versions),
    )


def _parse_version(raw: Any, levels: tuple[str, ...]) -> IncentiveVersion:
    if not isinstance(raw, dict):
        raise RulesError("each [[incentives]] entry must be a table")
    effective_from = raw.get("effective_from")
    if not isinstance(effective_from, dt.date) or isinstance(effective_from, dt.datetime):
        raise RulesError("each [[incentives]] entry needs effective_from = YYYY-MM-DD")
    where = f"incentives from {effective_from.isoformat()}"
    if ("fixed" in raw) == ("levels" in raw):
        raise RulesError(f"{where}: give either fixed or levels, not both or neither")
    if "fixed" in raw:
        return IncentiveVersion(effective_from, _amount(raw["fixed"], where), {}, ())
    amounts = {str(k).lower(): _amount(v, where) for k, v in dict(raw["levels"]).items()}
    if set(amounts) != set(levels):
        raise RulesError(f"{where}: levels must give an amount for each of {', '.join(levels)}")
    steps = tuple(
        sorted(
            (_loyalty_step(step, where) for step in raw.get("loyalty", [])),
            key=lambda s: s.min_registrations,
        )
    )
    return IncentiveVersion(effective_from, None, amounts, steps)


def _loyalty_step(raw: Any, where: str) -> LoyaltyStep:
    try:
        minimum = int(raw["min_registrations"])
        multiplier = Decimal(str(raw["multiplier"]))
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise RulesError(
            f"{where}: each loyalty step needs min_registrations and multiplier"
        ) from exc
    if minimum < 0 or multiplier <= 0:
        raise RulesError(f"{where}: loyalty steps need min_registrations >= 0, multiplier > 0")
    return LoyaltyStep(minimum, multiplier)


def _amount(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise RulesError(f"{where}: amounts must be numbers")
    amount = Decimal(value)
    if amount < 0:
        raise RulesError(f"{where}: amounts cannot be negative")
    return amount


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name)
    if not isinstance(table, dict):
        raise RulesError(f"the rules file needs a [{name}] table")
    return table


def _required(table: dict[str, Any], where: str, key: str) -> Any:
    if key not in table:
        raise RulesError(f"{where}.{key} is missing from the rules file")
    return table[key]


def _positive_int(programme: dict[str, Any], key: str) -> int:
    value = _required(programme, "programme", key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RulesError(f"programme.{key} must be a positive whole number")
    return value
