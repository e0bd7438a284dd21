"""Put/Get/DeleteBucketLifecycleConfiguration, and the ``x-amz-expiration`` header.

The rules themselves are vaultaire/lifecycle/rules.py; the runner that applies them in the
background is vaultaire/lifecycle/runner.py. The configuration is the container setting
``lifecycle``; GET and HEAD read it through the engine's cached point reads (a change in any
process counts on the next request) and parse each stored text once, so the header costs
neither a catalog read nor a parse on the hot path.
"""

from __future__ import annotations

from vaultaire.api.call import OperationBase, S3Call, http_date
from vaultaire.api.errors import S3Error
from vaultaire.lifecycle import documents, evaluate, rules
from vaultaire.model import Artifact, Container

MIN_SIZE_HEADER = "x-amz-transition-default-minimum-object-size"


class LifecycleOperations(OperationBase):
    """The lifecycle configuration of a bucket, and what it says of one object."""

    # Seconds in a lifecycle "day" ([lifecycle] day_seconds): set by the app.
    lifecycle_day_seconds: float = evaluate.DAY

    async def _lifecycle(self, call: S3Call, container: Container) -> rules.Configuration | None:
        stored = await self.engine.container_setting(call.ctx, container, rules.SETTING)
        if stored is None:
            return None
        # Parsed once per stored text: the same text always means the same configuration.
        parsed: dict[str, rules.Configuration] = vars(self).setdefault("_lifecycle_parsed", {})
        configuration = parsed.get(stored)
        if configuration is None:
            configuration = documents.load(stored)
            if len(parsed) > 1_000:
                parsed.clear()
            parsed[stored] = configuration
        return configuration

    async def get_bucket_lifecycle_configuration(self, call: S3Call) -> bytes:
        container = await self._container(call)
        stored = await self.engine.container_setting(call.ctx, container, rules.SETTING)
        if stored is None:
            raise S3Error(
                "NoSuchLifecycleConfiguration",
                "The lifecycle configuration does not exist",
                BucketName=container.name,
            )
        configuration = documents.load(stored)
        call.set_header(MIN_SIZE_HEADER, configuration.min_size)
        return self._xml(call, documents.document(configuration))

    async def put_bucket_lifecycle_configuration(self, call: S3Call) -> bytes:
        container = await self._container(call)
        body = await self._small_body(call)
        self._check_body_integrity(call, body)
        configuration = rules.parse(body, self.engine.drivers, call.headers.get(MIN_SIZE_HEADER))
        await self.engine.put_container_setting(call.ctx, container, rules.SETTING, documents.store(configuration))
        call.set_header(MIN_SIZE_HEADER, configuration.min_size)
        call.set_header("Content-Length", "0")
        return b""

    async def delete_bucket_lifecycle(self, call: S3Call) -> bytes:
        container = await self._container(call)
        await self.engine.delete_container_setting(call.ctx, container, rules.SETTING)
        call.request.setResponseCode(204)
        return b""

    def _echo_expiration(self, call: S3Call, configuration: rules.Configuration | None, artifact: Artifact) -> None:
        """``x-amz-expiration: expiry-date="...", rule-id="..."`` when a rule will expire the object."""
        if configuration is None:
            return
        found = evaluate.expiration(configuration, evaluate.Version.of(artifact), self.lifecycle_day_seconds)
        if found is not None:
            when, rule_id = found
            call.set_header("x-amz-expiration", f'expiry-date="{http_date(when)}", rule-id="{_quoted(rule_id)}"')


def _quoted(value: str) -> str:
    # A rule id is the client's text; inside a quoted header parameter quotes and line breaks cannot be.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
