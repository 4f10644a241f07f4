"""Prices as shoppers read them: formatted per locale and currency with Babel (CLDR data).

>>> format_price("1299", "EUR", "de_DE")
'1.299,00\\xa0€'
>>> format_price("1299", "USD", "en_US")
'$1,299.00'
>>> discount_percent("100", "79.90")
20
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ..errors import BackdropError


class MoneyError(BackdropError, ValueError):
    """A price, currency or locale that cannot be used."""


def parse_amount(value: str | float | Decimal, field: str = "price") -> tuple[Decimal, str]:
    """(amount, currency code or '') from ``12.5``, ``"12.50"`` or a feed's ``"12.50 EUR"``."""
    text = str(value).strip()
    currency = ""
    parts = text.split()
    if len(parts) == 2 and parts[1].isalpha():
        text, currency = parts[0], parts[1].upper()
    try:
        amount = Decimal(text.replace(",", "")) if text.count(".") <= 1 else Decimal("nan")
    except InvalidOperation:
        raise MoneyError(f"{field}: {value!r} is not an amount (write 12.50, or 12.50 EUR)") from None
    if not amount.is_finite() or amount < 0:
        raise MoneyError(f"{field}: {value!r} is not an amount of 0 or more")
    return amount, currency


def check_currency(code: str, field: str = "currency") -> str:
    from babel.numbers import get_currency_name

    code = code.strip().upper()
    if len(code) != 3 or get_currency_name(code, locale="en") == code:
        raise MoneyError(f"{field}: {code!r} is not an ISO 4217 currency code (EUR, USD, GBP...)")
    return code


def check_locale(locale: str) -> str:
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        raise MoneyError(f"locale {locale!r} is unknown; use a CLDR locale such as en_US, de_DE, fr_FR") from None
    return locale


def format_price(amount: str | Decimal, currency: str, locale: str = "en_US") -> str:
    from babel.numbers import format_currency

    return format_currency(Decimal(str(amount)), currency, locale=locale)


def discount_percent(price: str | Decimal, sale_price: str | Decimal) -> int:
    """The whole percentage a sale price takes off (rounded down: never promise more than is true)."""
    price, sale = Decimal(str(price)), Decimal(str(sale_price))
    if price <= 0 or sale >= price:
        return 0
    return int((price - sale) * 100 // price)
