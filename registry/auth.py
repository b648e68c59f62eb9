"""API-key authentication for the async API: `X-API-Key: dsk_…`.

With API_KEYS_REQUIRED=false (a cutover window for the old service's clients, which send
no key) a request without a key is let in; a key that is sent is still checked.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import APIKeyHeader

from registry.models import ApiKey, hash_api_key

# Recording every request's use would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)
# What a request without a key is authenticated as while keys are not required.
ANONYMOUS = "anonymous"


class ApiKeyRevoked(Exception):
    """403: the key exists but was revoked."""


class ApiKeyAuth(APIKeyHeader):
    param_name = "X-API-Key"
    # ninja's built-in auth is sync; this flag makes it await our coroutine instead.
    is_async = True

    async def authenticate(self, request: HttpRequest, key: str | None) -> ApiKey | str | None:
        if not key:
            return None if settings.API_KEYS_REQUIRED else ANONYMOUS
        api_key = await ApiKey.objects.filter(key_hash=hash_api_key(key.strip())).afirst()
        if api_key is None:
            return None
        if api_key.is_revoked:
            raise ApiKeyRevoked
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            await ApiKey.objects.filter(pk=api_key.pk).aupdate(last_used_at=now)
        return api_key


api_key_auth = ApiKeyAuth()
