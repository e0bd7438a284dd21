"""Put/Get/DeleteBucketLifecycleConfiguration, and the ``x-amz-expiration`` header.

The rules themselves are vaultaire/lifecycle/rules.py; the runner that applies them in the
background is vaultaire/lifecycle/runner.py. The configuration is the container setting
``lifecycle``; GET and HEAD read it through a cache of a few seconds, so the header costs
no catalog read on the hot path (another worker process sees a change that much later).
"""

from __future__ import annotations

import time

from attrs import frozen

from vaultaire.api.call import OperationBase, S3Call, http_date
from vaultaire.api.errors import S3Error
from vaultaire.lifecycle import documents, evaluate, rules
from vaultaire.model import Artifact, Container

CACHE_SECONDS = 2.0
MIN_SIZE_HEADER = "x-amz-transition-default-minimum-object-size"


@frozen
class _Cached:
    read_at: float
    configuration: rules.Configuration | None


class LifecycleOperations(OperationBase):
    """The lifecycle configuration of a bucket, and what it says of one object."""

    # Seconds in a lifecycle "day" ([lifecycle] day_seconds): set by the app.
    lifecycle_day_seconds: float = evaluate.DAY

    def _lifecycle_cache(self) -> dict[tuple[int, float], _Cached]:
        cache: dict[tuple[int, float], _Cached] = vars(self).setdefault("_lifecycle_by_container", {})
        return cache

    async def _lifecycle(self, call: S3Call, container: Container) -> rules.Configuration | None:
        cache = self._lifecycle_cache()
        key = (container.id, container.created)  # ids are reused after a delete
        now = time.monotonic()
        cached = cache.get(key)
        if cached is not None and now - cached.read_at < CACHE_SECONDS:
            return cached.configuration
        stored = await self.engine.container_setting(call.ctx, container, rules.SETTING)
        configuration = documents.load(stored) if stored is not None else None
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = _Cached(now, configuration)
        return configuration

    def _forget_lifecycle(self, container: Container) -> None:
        self._lifecycle_cache().pop((container.id, container.created), None)

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
        self._forget_lifecycle(container)
        call.set_header(MIN_SIZE_HEADER, configuration.min_size)
        call.set_header("Content-Length", "0")
        return b""

    async def delete_bucket_lifecycle(self, call: S3Call) -> bytes:
        container = await self._container(call)
        await self.engine.delete_container_setting(call.ctx, container, rules.SETTING)
        self._forget_lifecycle(container)
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
