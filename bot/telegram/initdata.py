"""Telegram's init data for a Mini App, checked as Telegram documents it
(core.telegram.org/bots/webapps, "Validating data received via the Mini App"):

    data_check_string = every field but `hash`, as `key=value` (values decoded),
                        sorted by key, joined by "\\n"
    secret_key        = HMAC_SHA256(key="WebAppData", message=bot_token)
    hash              = hex(HMAC_SHA256(key=secret_key, message=data_check_string))

compared in constant time, and `auth_date` no older than the allowed age (nor in the
future beyond a little clock skew). python-telegram-bot has no validator; this is ours.
Anything wrong is simply "not signed in": the caller answers 403 and says nothing more.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

# Init data is a few hundred bytes; a much longer header is not Telegram's.
MAX_LENGTH = 4096
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
# A phone's clock a little ahead of ours is not a forgery.
SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class WebAppUser:
    """Who opened the web view, as Telegram signed it."""

    id: int
    language_code: str | None
    first_name: str | None
    signed_at: dt.datetime


def _secret(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def _check_string(fields: list[tuple[str, str]]) -> str:
    return "\n".join(f"{key}={value}" for key, value in sorted(fields))


def signed_user(
    init_data: str, *, bot_token: str, now: dt.datetime, max_age: dt.timedelta
) -> WebAppUser | None:
    """The user the init data was signed for, or None when it is forged, altered,
    truncated, stale or not init data at all."""
    if not init_data or len(init_data) > MAX_LENGTH:
        return None
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    hashes = [value for key, value in pairs if key == "hash"]
    fields = [(key, value) for key, value in pairs if key != "hash"]
    keys = [key for key, _ in fields]
    if len(hashes) != 1 or len(set(keys)) != len(keys):  # a field given twice: not Telegram's
        return None
    if not _HEX64.match(hashes[0]):  # compare_digest takes ASCII only: no 500 on "é"
        return None
    expected = hmac.new(_secret(bot_token), _check_string(fields).encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), hashes[0].lower()):
        return None
    values = dict(fields)
    try:
        signed_at = dt.datetime.fromtimestamp(int(values["auth_date"]), dt.UTC)
        user = json.loads(values["user"])
        user_id = int(user["id"])
    except (KeyError, ValueError, TypeError, OverflowError):
        return None
    if not now - max_age <= signed_at <= now + SKEW:
        return None
    language = user.get("language_code")
    name = user.get("first_name")
    return WebAppUser(
        id=user_id,
        language_code=language if isinstance(language, str) else None,
        first_name=name if isinstance(name, str) else None,
        signed_at=signed_at,
    )


def sign(fields: dict[str, str], *, bot_token: str) -> str:
    """Init data as Telegram would sign it: for the tests, and for the demo's own web view
    (which has no Telegram to open it)."""
    pairs = list(fields.items())
    digest = hmac.new(_secret(bot_token), _check_string(pairs).encode(), hashlib.sha256)
    return urlencode([*pairs, ("hash", digest.hexdigest())])


def init_data_for(
    user_id: int, *, bot_token: str, at: dt.datetime, language: str = "en", name: str = "Demo"
) -> str:
    """Signed init data for one user at one moment (tests, the demo)."""
    user = {"id": user_id, "first_name": name, "language_code": language}
    return sign(
        {
            "query_id": f"AAH{user_id}",
            "user": json.dumps(user, separators=(",", ":")),
            "auth_date": str(int(at.timestamp())),
        },
        bot_token=bot_token,
    )
