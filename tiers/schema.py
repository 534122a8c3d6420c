"""The catalog YAML's shape, as marshmallow schemas: types, ranges, required and unknown fields.

Cross-references and business rules (unknown features, tier order, price consistency) are
tiers/checks.py's job; this module only says whether each value is well-formed on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from babel.numbers import list_currencies
from marshmallow import RAISE, Schema, ValidationError, fields

from tiers.checks import did_you_mean, money
from tiers.model import UNLIMITED, parse_instant
from tiers.money import PRESENTMENT_CURRENCIES, currency_name, decimals, max_charge, step

# \Z, not $: "$" also matches before a final newline ("free\n" passed)
ID_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
MAX_AMOUNT = 10**12  # minor units: ten billion dollars is not a price, it is a typo (see also
# tiers.money.max_charge: Stripe's own maximum, lower for most currencies)
MAX_LIMIT = 10**15
KNOWN_CURRENCIES = frozenset(c.lower() for c in list_currencies())


def _describe(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the text '{value}'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):  # a datetime too: ISO, as written, not Python's repr
        return value.isoformat()
    return repr(value)


class WholeNumber(fields.Field):
    """An integer: not a bool, not a float, not a numeric string; optionally within a range."""

    def __init__(self, *, minimum: int = 0, maximum: int = MAX_LIMIT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(self.wrong_type(value))
        return check_range(value, self.minimum, self.maximum)

    def wrong_type(self, value: Any) -> str:
        return f"must be a whole number, not {_describe(value)}"


def check_range(value: int, minimum: int, maximum: int, unit: str = "") -> int:
    """`value` if minimum <= value <= maximum, else a ValidationError saying the range."""
    if value < 0 <= minimum:
        raise ValidationError(f"must not be negative, not {value:,}{unit}")
    if not minimum <= value <= maximum:
        raise ValidationError(
            f"must be between {minimum:,}{unit} and {maximum:,}{unit}, not {value:,}{unit}"
        )
    return value


class Amount(WholeNumber):
    """A price in integer minor units (1999 for 19.99)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(minimum=0, maximum=MAX_AMOUNT, **kwargs)

    def wrong_type(self, value: Any) -> str:
        return f"prices are integer minor units (1999 for 19.99), not {_describe(value)}"

    @staticmethod
    def hint(value: Any, currency: str) -> str | None:
        """For a price written in major units, what to write instead in `currency`'s minor
        units (19.99 usd: 1999; 1000 jpy: 1000; 1.5 kwd: 1500); for digits read as text
        ("2900" in quotes, 0500), the same digits as a number; None when there is no such
        whole number."""
        if isinstance(value, bool) or not isinstance(value, float | str):
            return None
        text = str(value).strip()
        # Digits are minor units already, whatever made them text: quotes, or a leading zero
        # (which YAML 1.1 would read as octal, so the catalog loader reads it as text).
        whole = isinstance(value, str) and re.fullmatch(r"[-+]?[0-9]+", text) is not None
        try:
            minor = Decimal(text) if whole else Decimal(text).scaleb(decimals(currency))
        except (InvalidOperation, ArithmeticError):  # not a number, or past Decimal's range
            return None
        if not (
            minor.is_finite()
            and abs(minor) <= (max_charge(currency) or MAX_AMOUNT)
            and minor == minor.to_integral_value()
            and int(minor) % step(currency) == 0  # (an amount Stripe cannot charge: no hint)
        ):
            return None
        if not whole:
            return f"prices are integer minor units: write {int(minor)} for {value}"
        if re.match(r"[-+]?0[0-9]", text):
            return (
                f"prices are integer minor units: write {int(minor)} for {text}, "
                "without the leading zero"
            )
        return f"prices are integer minor units: write {int(minor)} without quotes"


class Amounts(fields.Dict):
    """Amounts by currency, each at most what Stripe takes in its currency; a price written in
    major units gets its currency's hint."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=CurrencyKey(), values=Amount(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            amounts = super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as exc:
            messages = exc.messages
            if isinstance(value, Mapping) and isinstance(messages, dict):
                for key, raw in value.items():
                    entry = messages.get(key)
                    hint = Amount.hint(raw, str(key)) if isinstance(key, str) else None
                    if hint and isinstance(entry, dict) and "value" in entry:
                        entry["value"] = [hint]
            raise
        too_large = {
            key: {"value": [message]}
            for key, amount in value.items()
            if (message := _above_stripe_maximum(amount, str(key)))
        }
        if too_large:
            raise ValidationError(too_large, valid_data=amounts)
        return amounts


def _above_stripe_maximum(amount: int, currency: str) -> str | None:
    limit = max_charge(currency)
    if limit is None or amount <= limit:
        return None
    largest = limit - limit % step(currency)  # (KWD 99,999.990: Stripe charges KWD in 0.010s)
    return (
        f"{money(amount, currency)} is more than Stripe can charge: at most "
        f"{money(largest, currency)}"
    )


class Percent(fields.Field):
    """A percentage written `80%` or `80`, loaded as the integer 80."""

    def __init__(self, *, minimum: int, maximum: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        number: Any = value
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,12}\s*%?\s*", value):
            number = int(value.strip().rstrip("%"))
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValidationError(
                f"must be a whole percentage like 80% or 80, not {_describe(value)}"
            )
        return check_range(number, self.minimum, self.maximum, " %")


# Control characters (Unicode category Cc) and lone surrogates (Cs)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNPRINTABLE_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class Text(fields.String):
    """Text that every page, JSON answer and terminal can print: no lone surrogate (YAML's
    "\\ud800" escape, which cannot be encoded as UTF-8) and no control character (line breaks
    and tabs allowed only where `multiline`, as in descriptions)."""

    def __init__(self, *, multiline: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", True)
        kwargs.setdefault("error_messages", {"invalid": "must be text"})
        super().__init__(**kwargs)
        self.multiline = multiline

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"must be text, not {_describe(value)}")
        return check_printable(value, multiline=self.multiline)


def check_printable(text: str, *, multiline: bool = False) -> str:
    """`text`, or a ValidationError naming its first lone surrogate or control character."""
    found = (_UNPRINTABLE_MULTILINE if multiline else _UNPRINTABLE).search(text)
    if found is None:
        return text
    shown = found.group().encode("unicode_escape").decode("ascii")
    position = found.start() + 1
    if "\ud800" <= found.group() <= "\udfff":
        raise ValidationError(
            f"contains a lone surrogate ({shown}, character {position}), which cannot be "
            "written as UTF-8: remove that \\u escape"
        )
    allowed = "" if multiline else " (a line break or tab included)"
    raise ValidationError(
        f"contains the control character {shown} (character {position}): write plain text "
        f"without control characters{allowed}"
    )


class Ident(Text):
    """An id: lower-case letters, digits and underscores, starting with a letter."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", False)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not ID_PATTERN.match(text):
            raise ValidationError(
                f"'{text}' is not a valid id: use lower-case letters, digits and underscores, "
                "starting with a letter (at most 64 characters)"
            )
        return text


class Choice(Text):
    """One of a fixed set of words, with a suggestion for a near miss."""

    def __init__(self, choices: tuple[str, ...], **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", False)
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            check_printable(value)  # the message below repeats the value
        if value not in self.choices:
            shown = value if isinstance(value, str) else _describe(value)
            raise ValidationError(
                f"'{shown}' is not one of {', '.join(self.choices)}"
                + did_you_mean(str(value), self.choices)
            )
        return value


class Currency(Text):
    """A 3-letter ISO 4217 code of a currency Stripe charges in, loaded lower-case."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", False)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        code = text.lower()
        if not re.fullmatch(r"[a-z]{3}", code):
            hint = did_you_mean(code, PRESENTMENT_CURRENCIES) if code.isalpha() else ""
            raise ValidationError(
                f"'{text}' is not a currency code: use a 3-letter ISO 4217 code like usd or eur"
                + hint
            )
        if code not in KNOWN_CURRENCIES:
            raise ValidationError(
                f"'{text}' is not a known ISO 4217 currency"
                + did_you_mean(code, PRESENTMENT_CURRENCIES)
            )
        if code not in PRESENTMENT_CURRENCIES:
            raise ValidationError(
                f"'{text}' ({currency_name(code)}) is not a currency payments can be taken in: "
                "Stripe does not support it"
            )
        return code


class CurrencyKey(Text):
    """A currency code used as a price key: checked against `currencies` in tiers/checks.py,
    which can suggest a declared one."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", False)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).lower()


class StrictBool(fields.Field):
    """true or false, nothing else (YAML's `yes` is already a bool; "yes" in quotes is not)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(f"must be true or false, not {_describe(value)}")
        return value


class Instant(fields.Field):
    """A date (midnight UTC) or an ISO 8601 date-time."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, date | str) and not isinstance(value, bool):
            if isinstance(value, str):
                check_printable(value)  # the message below repeats the value
            try:
                parsed = parse_instant(value)
            except OverflowError:  # in range as written, not once converted to UTC
                raise ValidationError(
                    "must be a date like 2026-01-31 or a time like 2026-01-31T12:00:00Z, from "
                    f"0001-01-01 to 9999-12-31 in UTC, not {_describe(value)}"
                ) from None
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed
        raise ValidationError(
            f"must be a date like 2026-01-31 or a time like 2026-01-31T12:00:00Z, "
            f"not {_describe(value)}"
        )


class HttpUrl(Text):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise ValidationError(f"must be an http:// or https:// URL, not '{text}'") from None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError(f"must be an http:// or https:// URL, not '{text}'")
        return text


GRANT_KEYS = ("limit", "nudge_at", "overage", "enabled")


class GrantValue(fields.Field):
    """A tier's value for one feature: true/false, a whole number, `unlimited`, or a mapping
    {limit, nudge_at, overage} (`enabled` for booleans). Whether the form suits the feature's
    type is checked in tiers/checks.py, which knows the feature."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or value == UNLIMITED:
            return value
        if isinstance(value, int):
            return check_range(value, 0, MAX_LIMIT)
        if isinstance(value, Mapping):
            return self._mapping(value)
        raise ValidationError(
            f"must be true, false, a whole number or 'unlimited', not {_describe(value)}"
            + (did_you_mean(value, [UNLIMITED]) if isinstance(value, str) else "")
        )

    def _mapping(self, value: Mapping[Any, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        result: dict[str, Any] = {}
        for key, item in value.items():
            try:
                if key == "limit" and item is None and "enabled" not in value:
                    # A blank `limit:` is a number left out, not "unlimited". (The canonical
                    # form, GET /v1/catalog, states `enabled: true` beside a null limit.)
                    raise ValidationError("may not be empty: write a number or 'unlimited'")
                result[str(key)] = self._entry(str(key), item)
            except ValidationError as error:
                errors[str(key)] = error.messages  # type: ignore[assignment]
        if errors:
            raise ValidationError(errors)
        return result

    def _entry(self, key: str, item: Any) -> Any:
        if key not in GRANT_KEYS:
            raise ValidationError(f"unknown field '{key}'" + did_you_mean(key, GRANT_KEYS))
        if key == "enabled":
            if not isinstance(item, bool):
                raise ValidationError(f"must be true or false, not {_describe(item)}")
            return item
        if item is None and key != "overage":
            return None
        if key == "limit" and item == UNLIMITED:
            return item
        if isinstance(item, bool) or not isinstance(item, int):
            extra = " or 'unlimited'" if key == "limit" else ""
            raise ValidationError(f"must be a whole number{extra}, not {_describe(item)}")
        return check_range(item, 0, MAX_LIMIT)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


def _ids(**kwargs: Any) -> fields.List:
    return fields.List(Text(allow_none=False), allow_none=True, **kwargs)


def _prices(intervals: tuple[str, ...]) -> fields.Dict:
    return fields.Dict(
        keys=Choice(intervals),
        values=Amounts(),
        allow_none=True,
    )


class OffersSchema(StrictSchema):
    nudge_threshold = Percent(minimum=1, maximum=99)
    dismissal_cooldown_days = WholeNumber(minimum=0, maximum=365)
    price_jump_guard = Percent(minimum=0, maximum=1000)
    quote_valid_minutes = WholeNumber(minimum=1, maximum=1440)
    contact_sales_url = HttpUrl()


class FeatureSchema(StrictSchema):
    name = Text()
    type = Choice(("boolean", "counter", "gauge"), required=True)
    group = Text()
    description = Text(multiline=True)
    unit = Text()
    unit_plural = Text()
    resets = Choice(("month", "day", "billing_period"), allow_none=True)


class TierSchema(StrictSchema):
    id = Ident(required=True)
    name = Text()
    tagline = Text()
    prices = _prices(("month", "year"))
    trial_days = WholeNumber(minimum=0, maximum=365)
    features = fields.Dict(keys=Text(allow_none=False), values=GrantValue(), allow_none=True)
    recommended = StrictBool()
    hidden = StrictBool()
    contact_sales = StrictBool()


class SuggestedWithSchema(StrictSchema):
    features = _ids()
    tiers = _ids()


class AddOnSchema(StrictSchema):
    id = Ident(required=True)
    name = Text()
    description = Text(multiline=True)
    billing = Choice(("recurring", "one_time"), required=True)
    prices = _prices(("month", "year", "once"))
    available_to = _ids()
    included_in = _ids()
    grants = fields.Dict(keys=Text(allow_none=False), values=GrantValue(), allow_none=True)
    support_level = Text()
    suggested_with = fields.Nested(SuggestedWithSchema, allow_none=True)


class PromotionSchema(StrictSchema):
    id = Ident(required=True)
    name = Text()
    description = Text(multiline=True)
    percent_off = WholeNumber(minimum=1, maximum=100, allow_none=True)
    amount_off = Amounts(allow_none=True)
    tiers = _ids()
    intervals = fields.List(Choice(("month", "year")), allow_none=True)
    starts_at = Instant(allow_none=True)
    ends_at = Instant(allow_none=True)
    duration = Choice(("once", "forever", "repeating"))
    duration_in_months = WholeNumber(minimum=1, maximum=36, allow_none=True)
    code = Text()


class CatalogSchema(StrictSchema):
    format = WholeNumber(required=True, minimum=1, maximum=1)
    name = Text()
    currencies = fields.List(Currency(), required=True)
    offers = fields.Nested(OffersSchema, allow_none=True)
    features = fields.Dict(keys=Ident(), values=fields.Nested(FeatureSchema), allow_none=True)
    tiers = fields.List(fields.Nested(TierSchema), required=True, allow_none=True)
    addons = fields.List(fields.Nested(AddOnSchema), allow_none=True)
    promotions = fields.List(fields.Nested(PromotionSchema), allow_none=True)
