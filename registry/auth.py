"""API-key authentication for the async API: `X-API-Key: dsk_…`.

With API_KEYS_REQUIRED=false (a cutover window for the old service's clients, which send
no key) a request without a key is let in; a key that is sent is still checked.

`api_key_auth` lets any valid key in; `ingest_key_auth` and `delete_key_auth`, on the
operations that change documents, refuse a read-only key (403, naming the permission)
before the operation runs. What a key may see is its scope (`scope_of`), which the
selectors and services apply (registry/scopes.py).
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import APIKeyHeader

from common.db import async_reads
from common.singletons import Singleton
from registry.exceptions import ReadOnlyKey
from registry.models import ApiKey, hash_api_key
from registry.scopes import EVERYTHING, Scope

# Recording every request's use would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)
# What a request without a key is authenticated as while keys are not required.
ANONYMOUS = "anonymous"


class ApiKeyRevoked(Exception):
    """403: the key exists but was revoked."""


class KnownKeys:
    """The keys this process found in the database, by hash, for API_KEY_CACHE_SECONDS:
    a request with a key seen a moment ago needs no query. A revocation or deletion in
    this process forgets them at once (forget_api_keys, on every save and delete of a
    key and after the admin's revoke action); in the other processes it takes effect
    within API_KEY_CACHE_SECONDS. Unknown keys are never kept: a key created a moment
    ago in another process works at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._found: dict[str, tuple[ApiKey, float]] = {}

    def get(self, key_hash: str) -> ApiKey | None:
        found = self._found.get(key_hash)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def keep(self, key_hash: str, api_key: ApiKey) -> None:
        if self.seconds > 0:
            if len(self._found) > 10_000:  # keys are few; never let a flood grow it
                self._found.clear()
            self._found[key_hash] = (api_key, time.monotonic() + self.seconds)


_known = Singleton(
    lambda: KnownKeys(settings.API_KEY_CACHE_SECONDS), settings=["API_KEY_CACHE_SECONDS"]
)


def forget_api_keys(**kwargs: object) -> None:
    """Look every key up again on its next use (a receiver of ApiKey's save/delete)."""
    _known.reset()


post_save.connect(forget_api_keys, sender=ApiKey)
post_delete.connect(forget_api_keys, sender=ApiKey)


class ApiKeyAuth(APIKeyHeader):
    param_name = "X-API-Key"
    # ninja's built-in auth is sync; this flag makes it await our coroutine instead.
    is_async = True

    def __init__(self, *, writes: str | None = None) -> None:
        super().__init__()
        # What the operations behind this auth do, when they change documents: a
        # read-only key is refused, in these words ("ingesting needs the write …").
        self.writes = writes

    async def authenticate(self, request: HttpRequest, key: str | None) -> ApiKey | str | None:
        if not key:
            return None if settings.API_KEYS_REQUIRED else ANONYMOUS
        key_hash = hash_api_key(key.strip())
        known = _known.get()
        api_key = known.get(key_hash)
        if api_key is None:
            api_key = await _find(key_hash)
            if api_key is None:
                return None
            known.keep(key_hash, api_key)
        if api_key.is_revoked:
            raise ApiKeyRevoked
        if self.writes is not None and not api_key.scope.can_write:
            raise ReadOnlyKey(self.writes)
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            api_key.last_used_at = now
            await ApiKey.objects.filter(pk=api_key.pk).aupdate(last_used_at=now)
        return api_key


async def _find(key_hash: str) -> ApiKey | None:
    keys = ApiKey.objects.filter(key_hash=key_hash)
    if async_reads.native_reads():
        found = await async_reads.fetch_models(keys[:1])
        return found[0] if found else None
    return await keys.afirst()


def scope_of(request: HttpRequest) -> Scope:
    """What the request's key may see and change; everything in anonymous mode."""
    auth = getattr(request, "auth", None)
    return auth.scope if isinstance(auth, ApiKey) else EVERYTHING


api_key_auth = ApiKeyAuth()
ingest_key_auth = ApiKeyAuth(writes="ingesting")
delete_key_auth = ApiKeyAuth(writes="deleting")
