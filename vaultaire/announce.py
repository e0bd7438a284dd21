"""What the daemon says when it is up: where to point a client, as a URL one can paste."""

from __future__ import annotations

from twisted.internet import endpoints

from vaultaire import __version__
from vaultaire.config import Settings

_ANY = ("", "0.0.0.0", "::")


def endpoint_url(description: str) -> str:
    """``tcp:8080:interface=127.0.0.1`` -> ``http://127.0.0.1:8080``; any endpoint that is not
    tcp: or ssl: (systemd:, unix:) is shown as given, as no URL names it."""
    kind = description.split(":", 1)[0].strip().lower()
    if kind not in ("tcp", "ssl"):
        return description
    try:
        args, kwargs = endpoints._parse(description)  # only splits; nothing is opened or loaded
        port = int(kwargs.get("port", args[1] if len(args) > 1 else ""))
    except (ValueError, IndexError):
        return description
    interface = kwargs.get("interface", "")
    scheme = "https" if kind == "ssl" else "http"
    if interface in _ANY:
        loopback = "[::1]" if interface == "::" else "127.0.0.1"
        return f"{scheme}://{loopback}:{port} (all interfaces)"
    host = f"[{interface}]" if ":" in interface else interface
    return f"{scheme}://{host}:{port}"


def serving_line(settings: Settings, data: str, workers: int = 1) -> str:
    """The one line that says the daemon serves, and where."""
    where = endpoint_url(settings.listen)
    if settings.development_loopback:
        where += " (loopback only, as the development keys are in use; --listen tcp:8080 serves every interface)"
    with_workers = f" with {workers} workers" if workers > 1 else ""
    console = f", web console on {endpoint_url(settings.console)}" if settings.console else ""
    return (
        f"Vaultaire {__version__} serving S3 on {where}{with_workers}, "
        f"ops on {endpoint_url(settings.ops)}{console}, data in {data}"
    )
