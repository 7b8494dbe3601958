"""Strict validation of 5-field cron schedules.

A watch list's schedule ends up in a crontab line or in a Kubernetes ``RayCronJob``/``CronJob``, so it
must mean the same to both: only the syntax they share is accepted. Five fields (minute, hour,
day of month, month, day of week), each a comma-separated list of ``*``, ``N``, ``N-M``, with an
optional ``/STEP``; month and weekday names (``jan``, ``mon``); or one of the macros below.
Extensions that only one side understands (seconds, ``?``, ``L``, ``W``, ``#``, weekday ``7``) are
refused.
"""

from __future__ import annotations

import re

MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names (numbered from ``lowest``)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_ITEM = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[0-9]+))?$")


def validate_cron(expression: str) -> None:
    """Raise ``ValueError`` saying what is wrong unless ``expression`` is a valid schedule."""
    if not isinstance(expression, str):
        raise ValueError(f"expected a cron expression as a string, got {expression!r}")
    text = expression.strip().lower()
    if text.startswith("@"):
        if text not in MACROS:
            raise ValueError(
                f"unknown macro {expression!r}; use one of {', '.join(sorted(MACROS))}"
            )
        return
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    for value, (name, lowest, highest, names) in zip(fields, _FIELDS, strict=True):
        for item in value.split(","):
            _check_item(item, name, lowest, highest, names)


def _check_item(item: str, field: str, lowest: int, highest: int, names: tuple[str, ...]) -> None:
    match = _ITEM.match(item)
    if match is None:
        raise ValueError(f"{field} field: {item!r} is not N, N-M, * or one of them with /STEP")
    step = match["step"]
    if step is not None and int(step) < 1:
        raise ValueError(f"{field} field: step in {item!r} must be at least 1")
    if match["range"] == "*":
        return
    bounds = [_value(part, field, lowest, highest, names) for part in match["range"].split("-")]
    if len(bounds) == 1 and step is not None:
        # "N/STEP" means N-max/STEP to crontab but is refused by some parsers: ask for the range.
        raise ValueError(
            f"{field} field: write {item!r} as a range, e.g. {bounds[0]}-{highest}/{step}"
        )
    if bounds[0] > bounds[-1]:
        raise ValueError(f"{field} field: range {item!r} runs backwards")


def _value(token: str, field: str, lowest: int, highest: int, names: tuple[str, ...]) -> int:
    if token in names:
        return lowest + names.index(token)
    if not token.isdigit():
        raise ValueError(f"{field} field: {token!r} is not a number or a name")
    number = int(token)
    if not lowest <= number <= highest:
        raise ValueError(f"{field} field: {number} is outside {lowest}-{highest}")
    return number
