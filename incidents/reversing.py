"""Reversing one URL pattern for many rows of a page at the cost of one ``reverse()``.

A page listing fifty rows with a link each spent a noticeable share of its rendering time in
``{% url %}`` (each call resolves the pattern again). ``url_maker`` reverses the pattern once
with a marker in place of the last argument and returns a function that fills in each row's
integer (the only kind of value for which the text ``reverse`` would produce is ``str(value)``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.urls import reverse

#: Stands for the row's value while reversing: digits no real primary key is made of.
_MARKER = 918_273_645_546_372_819


def url_maker(viewname: str, *fixed: object) -> Callable[[int], str]:
    """A function ``f(value) == reverse(viewname, args=[*fixed, value])`` for an ``int`` value
    (a primary key in an ``<int:...>`` route), reversing only once.

    Raises ``NoReverseMatch`` (at once) when the pattern does not take those arguments. Should
    the marker appear elsewhere in the reversed URL (a fixed argument containing it), every call
    falls back to ``reverse``.
    """
    marked = reverse(viewname, args=[*fixed, _MARKER])
    if marked.count(str(_MARKER)) != 1:
        return lambda value: reverse(viewname, args=[*fixed, value])
    before, after = marked.split(str(_MARKER))
    return lambda value: f"{before}{int(value)}{after}"
