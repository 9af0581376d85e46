"""What a request costs, in whole credits, from the entry's :class:`PriceRule`.

The price is computed from validated inputs (defaults filled in), so a request that leaves
``duration`` out pays for the default duration. Multipliers apply after the base price, and
the total is rounded up once, at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from hyperlocal.core.catalog import ModelEntry, PriceRule
from hyperlocal.core.validation import validate_inputs
from hyperlocal.engines.base import InputValue

__all__ = ["price", "price_inputs", "quote", "settled"]

# Float noise must never cost a credit: 3 * 0.1 is 0.30000000000000004, which would round up
# to 1. Rounding to a millionth first keeps exact products exact before the ceiling.
_DECIMALS = 6


def price(
    entry: ModelEntry,
    params: Mapping[str, InputValue],
    *,
    media_seconds: float | None = None,
    conversation_chars: int = 0,
) -> int:
    """The credits that ``entry`` charges for ``params``.

    ``media_seconds`` is the length of the input media, for ``per_minute`` rules; when it is
    not known yet the price is the one-minute minimum. ``conversation_chars`` is the length of
    the whole conversation, for ``per_message`` rules.
    """
    rule = entry.price
    total = _BASE[rule.kind](rule, params, media_seconds, conversation_chars)
    for multiplier in rule.multipliers:
        if _same(params.get(multiplier.field), multiplier.equals):
            total *= multiplier.factor
    return math.ceil(round(total, _DECIMALS))


def settled(
    entry: ModelEntry, params: Mapping[str, InputValue], charged: int, heard_seconds: float | None
) -> int:
    """What a completed job owes, given the seconds of input its engine decoded: a ``per_minute``
    price was charged on the length the input's headers stated, and a shorter true length costs
    less (never more: a longer one fails the job instead, see ``engines.media.bounded``)."""
    if entry.price.kind != "per_minute" or heard_seconds is None:
        return charged
    return min(charged, price(entry, params, media_seconds=heard_seconds))


def quote(entry: ModelEntry, raw: Mapping[str, object]) -> int:
    """What a request with these ``raw`` inputs would be charged, priced as its submit prices
    it (validated, defaults filled in), for forms that show the cost of what they hold. Inputs
    not given yet are not required. Input media are not fetched: a ``per_minute`` price is its
    one-minute minimum, and a ``per_message`` price is the price of an empty conversation."""
    return price(entry, validate_inputs(entry, raw, partial=True))


def price_inputs(rule: PriceRule) -> tuple[str, ...]:
    """The inputs whose values ``rule``'s price depends on: a form asks for a new ``quote``
    when one of them changes, and only then."""
    base = (rule.field or _FIELD[rule.kind],) if rule.kind in _FIELD else ()
    return tuple(dict.fromkeys([*base, *(m.field for m in rule.multipliers)]))


# The input that a per_second or per_resolution rule reads when it names none.
_FIELD = {"per_second": "duration", "per_resolution": "resolution"}


def _same(value: InputValue, expected: object) -> bool:
    # True == 1 in Python; a multiplier on a boolean must not fire on the number 1.
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected
    return value == expected


def _flat(rule: PriceRule, *_: object) -> float:
    return rule.credits


def _per_second(rule: PriceRule, params: Mapping[str, InputValue], *_: object) -> float:
    per = rule.per_seconds or 1.0
    value = params.get(rule.field or _FIELD["per_second"])
    if isinstance(value, bool) or not isinstance(value, int | float):
        return rule.credits  # no duration: one block, as the default would cost
    return rule.credits * value / per


def _per_resolution(rule: PriceRule, params: Mapping[str, InputValue], *_: object) -> float:
    value = params.get(rule.field or _FIELD["per_resolution"])
    return (rule.table or {}).get(str(value), rule.credits)


def _per_minute(rule: PriceRule, _params: object, media_seconds: float | None, *_: object) -> float:
    minutes = math.ceil(media_seconds / 60) if media_seconds else 1
    return rule.credits * max(1, minutes)


def _per_message(rule: PriceRule, _params: object, _seconds: object, chars: int) -> float:
    block = rule.chars_per_credit
    if not block:
        return rule.credits
    return rule.credits + max(0, math.ceil((chars - block) / block))


_BASE: dict[str, Callable[[PriceRule, Mapping[str, InputValue], float | None, int], float]] = {
    "flat": _flat,
    "per_second": _per_second,
    "per_resolution": _per_resolution,
    "per_minute": _per_minute,
    "per_message": _per_message,
}
