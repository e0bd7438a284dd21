"""The console's one Klein app (the page modules' mixins register their routes on it)."""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest

app = Klein()


def arg(request: IRequest, name: str) -> str:
    """A query or form field as text ("" when absent)."""
    values = request.args.get(name.encode()) if request.args else None
    if not values:
        return ""
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
