"""``Registry``: named objects of one kind (recipes, families, predictor kinds), registered once, found by name."""

from __future__ import annotations

import difflib
from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    """A dict that refuses a name registered twice and answers an unknown name with the closest ones.

    ``error`` is the exception an unknown name raises: ``ReviewlensError`` where the name comes from a
    user (a recipe), ``LookupError`` where only code names it; ``hint`` ends the message when nothing is close.
    """

    def __init__(self, what: str, error: type[Exception] = LookupError, hint: str = ""):
        super().__init__()
        self.what, self.error, self.hint = what, error, hint

    def register(self, name: str, item: T) -> T:
        if name in self:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self[name] = item
        return item

    def __missing__(self, name: str) -> T:
        close = difflib.get_close_matches(name, self, n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else self.hint
        raise self.error(f"unknown {self.what} {name!r}" + (f"; {hint}" if hint else ""))
