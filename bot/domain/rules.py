"""The programme's rules: newness, protection and the incentive quote.

Pure code: no Telegram, no database. Everything here is a function of the
rules file and of plain values, so the rules can be tested exhaustively.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain.errors import NoIncentiveInForce, RulesError

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
class ReminderRules:
    """The `[reminders]` section: when the bot writes first, and when it keeps quiet."""

    inactivity_days: int = 21
    followup_days: int = 14
    # Nothing is sent from `quiet_from` to `quiet_until` (programme time zone); the
    # span may cross midnight, as the default does.
    quiet_from: dt.time = dt.time(19, 0)
    quiet_until: dt.time = dt.time(9, 0)
    weekdays_only: bool = True
    tick_minutes: int = 5

    def quiet_hours(self) -> str:
        return f"{self.quiet_from:%H:%M}-{self.quiet_until:%H:%M}"


@dataclass(frozen=True)
class ConflictRules:
    """The `[conflicts]` section: contests, more time, proof, staff's deadline."""

    contest_days: int = 7  # a refusal can be contested this long after it
    extension_window_days: int = 14  # more time can be asked this long before the end
    extension_days: int = 30  # what one granted extension adds
    max_extensions: int = 1  # requests per registration
    approval_hours: int = 48  # staff decide within this; later an item is overdue
    require_proof: bool = False  # a won deal reaches staff only with a file

    @property
    def approval(self) -> dt.timedelta:
        return dt.timedelta(hours=self.approval_hours)


@dataclass(frozen=True)
class PrivacyRules:
    """The `[privacy]` section (PRODUCT.md §8): who answers for the data, where people
    write, and how long typed customer names of ended registrations are kept."""

    controller: str = "the programme's vendor"
    contact: str = "the programme staff"
    retention_days: int = 730

    @property
    def retention(self) -> dt.timedelta:
        return dt.timedelta(days=self.retention_days)


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
    reminders: ReminderRules = ReminderRules()
    conflicts: ConflictRules = ConflictRules()
    privacy: PrivacyRules = PrivacyRules()

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


def may_contest(rules: Rules, refused_on: dt.date, today: dt.date) -> bool:
    """Whether a refusal given on `refused_on` can still be contested."""
    return refused_on <= today <= refused_on + dt.timedelta(days=rules.conflicts.contest_days)


def may_ask_more_time(rules: Rules, *, protected_until: dt.date, today: dt.date) -> bool:
    """Whether the window for asking more time is open: the last days of protection."""
    window = dt.timedelta(days=rules.conflicts.extension_window_days)
    return protected_until - window <= today <= protected_until


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


@dataclass(frozen=True)
class LoyaltyStanding:
    """Where a partner stands for loyalty today, as a nudge or /status says it."""

    count: int  # registrations in the window up to today, rejected ones aside
    multiplier: Decimal | None  # what its next registration would get; None: fixed amount
    next_step: LoyaltyStep | None
    # The day the count falls below its step unless the partner registers again.
    keep_before: dt.date | None

    @property
    def registrations_to_next_step(self) -> int | None:
        return None if self.next_step is None else self.next_step.min_registrations - self.count


def loyalty_standing(rules: Rules, today: dt.date, registered: list[dt.date]) -> LoyaltyStanding:
    """A partner's loyalty standing from the dates of its registrations in the window.

    With n registrations at step m, the count drops below m on the day the
    (n - m + 1)-th oldest leaves the window: one more registration before that
    day keeps the partner there.
    """
    first, last = loyalty_window(rules, today)
    dates = sorted(day for day in registered if first <= day <= last)
    count = len(dates)
    try:
        version = version_in_force(rules, today)
    except NoIncentiveInForce:
        return LoyaltyStanding(count, None, None, None)
    if version.fixed is not None:
        return LoyaltyStanding(count, None, None, None)
    step = version.loyalty_step(count)
    multiplier = step.multiplier if step else Decimal(1)
    keep_before = None
    if step is not None and step.min_registrations > 0:
        leaving = dates[count - step.min_registrations]
        keep_before = leaving + dt.timedelta(days=rules.loyalty_window_days + 1)
    return LoyaltyStanding(count, multiplier, version.next_loyalty_step(count), keep_before)


def sending_allowed(rules: Rules, moment: dt.datetime) -> bool:
    """Whether the bot may write first at `moment`: outside quiet hours, on a weekday."""
    local = moment.astimezone(rules.timezone)
    reminders = rules.reminders
    if reminders.weekdays_only and local.weekday() >= 5:
        return False
    return not _in_quiet_hours(reminders, local.time())


def _in_quiet_hours(reminders: ReminderRules, time: dt.time) -> bool:
    start, end = reminders.quiet_from, reminders.quiet_until
    if start == end:
        return False
    if start < end:
        return start <= time < end
    return time >= start or time < end  # across midnight: 19:00-09:00


def next_allowed_moment(rules: Rules, moment: dt.datetime) -> dt.datetime:
    """The first moment at or after `moment` when the bot may write first."""
    if sending_allowed(rules, moment):
        return moment
    local = moment.astimezone(rules.timezone)
    # Sending resumes when quiet hours end or when a weekday starts: try both, day by day.
    for days in range(8):
        day = local.date() + dt.timedelta(days=days)
        for start in sorted((dt.time(0, 0), rules.reminders.quiet_until)):
            candidate = dt.datetime.combine(day, start, rules.timezone)
            if candidate >= local and sending_allowed(rules, candidate):
                return candidate.astimezone(dt.UTC)
    raise RulesError("the reminders' quiet hours and weekdays leave no moment to send")


# --- loading -----------------------------------------------------------------


def load_rules(path: Path | None = None) -> Rules:
    """Read and check the rules file; the built-in one when `path` is None."""
    try:
        if path is None:
            text = resources.files("bot.domain").joinpath("rules.toml").read_text(encoding="utf-8")
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
        reminders=_reminders_within(
            _parse_reminders(data.get("reminders", {})), _positive_int(programme, "protection_days")
        ),
        conflicts=_parse_conflicts(data.get("conflicts", {})),
        privacy=_parse_privacy(data.get("privacy", {})),
    )


def _parse_privacy(raw: Any) -> PrivacyRules:
    """The `[privacy]` table; every key has a default, the whole table may be absent."""
    if not isinstance(raw, dict):
        raise RulesError("[privacy] must be a table")
    defaults = PrivacyRules()
    texts = {}
    for key in ("controller", "contact"):
        value = raw.get(key, getattr(defaults, key))
        if not isinstance(value, str) or not value.strip():
            raise RulesError(f"privacy.{key} must be a text, such as the company's name")
        texts[key] = value.strip()
    days = _positive_int(raw, "retention_days", section="privacy", default=defaults.retention_days)
    return PrivacyRules(
        controller=texts["controller"], contact=texts["contact"], retention_days=days
    )


def _parse_conflicts(raw: Any) -> ConflictRules:
    """The `[conflicts]` table; every key has a default, the whole table may be absent."""
    if not isinstance(raw, dict):
        raise RulesError("[conflicts] must be a table")
    defaults = ConflictRules()
    require_proof = raw.get("require_proof", defaults.require_proof)
    if not isinstance(require_proof, bool):
        raise RulesError("conflicts.require_proof must be true or false")
    max_extensions = raw.get("max_extensions", defaults.max_extensions)
    if (
        isinstance(max_extensions, bool)
        or not isinstance(max_extensions, int)
        or max_extensions < 0
    ):
        raise RulesError("conflicts.max_extensions must be a whole number, 0 or more")

    def whole(key: str) -> int:
        return _positive_int(raw, key, section="conflicts", default=getattr(defaults, key))

    return ConflictRules(
        contest_days=whole("contest_days"),
        extension_window_days=whole("extension_window_days"),
        extension_days=whole("extension_days"),
        max_extensions=max_extensions,
        approval_hours=whole("approval_hours"),
        require_proof=require_proof,
    )


def _reminders_within(reminders: ReminderRules, protection_days: int) -> ReminderRules:
    if reminders.followup_days >= protection_days:
        raise RulesError(
            "reminders.followup_days must be fewer than programme.protection_days, "
            "or the follow-up would come the day a deal is registered"
        )
    return reminders


_QUIET_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _parse_reminders(raw: Any) -> ReminderRules:
    """The `[reminders]` table; every key has a default, the whole table may be absent."""
    if not isinstance(raw, dict):
        raise RulesError("[reminders] must be a table")
    defaults = ReminderRules()
    quiet = str(raw.get("quiet_hours", defaults.quiet_hours()))
    match = _QUIET_HOURS.match(quiet)
    try:
        if not match:
            raise ValueError(quiet)
        quiet_from = dt.time(int(match[1]), int(match[2]))
        quiet_until = dt.time(int(match[3]), int(match[4]))
    except ValueError as exc:
        raise RulesError('reminders.quiet_hours must be two times, like "19:00-09:00"') from exc
    weekdays_only = raw.get("weekdays_only", defaults.weekdays_only)
    if not isinstance(weekdays_only, bool):
        raise RulesError("reminders.weekdays_only must be true or false")

    def whole(key: str, default: int) -> int:
        return _positive_int(raw, key, section="reminders", default=default)

    return ReminderRules(
        inactivity_days=whole("inactivity_days", defaults.inactivity_days),
        followup_days=whole("followup_days", defaults.followup_days),
        quiet_from=quiet_from,
        quiet_until=quiet_until,
        weekdays_only=weekdays_only,
        tick_minutes=whole("tick_minutes", defaults.tick_minutes),
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


def _positive_int(
    table: dict[str, Any], key: str, *, section: str = "programme", default: int | None = None
) -> int:
    value = table.get(key, default) if default is not None else _required(table, section, key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RulesError(f"{section}.{key} must be a positive whole number")
    return value
