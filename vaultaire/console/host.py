"""What the console's page mixins (buckets.py, objects.py, settings.py...) use of the Console
that inherits them (app.py): declared once here for the type checker, defined there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twisted.web.iweb import IRequest

    from vaultaire.console.s3client import Keys, S3Client
    from vaultaire.console.sessions import Session


class PageHost:
    """The Console's calls a page mixin makes: rendering, redirects, sessions, the S3 client."""

    if TYPE_CHECKING:
        s3: S3Client

        async def html(
            self, request: IRequest, title: str, session: Session | None, *body: Any, status: int = 200
        ) -> bytes: ...

        def redirect(self, request: IRequest, location: str) -> bytes: ...

        def session(self, request: IRequest) -> Session: ...

        def posted(self, request: IRequest) -> Session: ...

        @staticmethod
        def keys(session: Session) -> Keys: ...
