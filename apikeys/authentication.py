import functools
import hmac
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apikeys import lockout
from apikeys.models import ApiKey, hash_key
from apikeys.services import BOOTSTRAP_PREFIX, ensure_bootstrap_key
from memoryproject import prepared

LAST_USED_RESOLUTION = timedelta(minutes=1)


@functools.cache
def _lookup(alias: str) -> tuple[str, list[str], dict[int, Any]]:
    """The key lookup compiled once per process (building and compiling the queryset cost
    more CPU than running it, and a raw() queryset's row handling as much again): its SQL,
    the attribute name of each column, and Django's converters for them. metadata, which no
    request reads, is deferred: loaded on first access, as with defer()."""
    query = ApiKey.objects.using(alias).defer("metadata").filter(key_hash="placeholder").query
    compiler = query.get_compiler(alias)
    sql, _ = compiler.as_sql()
    columns = [column for column, _, _ in compiler.select]
    return sql, [column.target.attname for column in columns], compiler.get_converters(columns)


def find_key(key_hash: str) -> ApiKey | None:
    """The key with this hash, or None (key_hash is unique)."""
    sql, names, converters = _lookup(DEFAULT_DB_ALIAS)
    connection = connections[DEFAULT_DB_ALIAS]
    with prepared.cursor(connection) as cursor:
        cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    if converters:  # as the queryset would apply them
        row = list(row)
        for position, (functions, expression) in converters.items():
            for function in functions:
                row[position] = function(row[position], expression, connection)
    return ApiKey.from_db(DEFAULT_DB_ALIAS, names, row)


class BearerKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`, nothing else.

    Every failure raises the same error, and every request does the same single indexed
    lookup (an absent or malformed header looks up an impossible hash), so neither the body
    nor the timing tells a missing key from a revoked one. A database that is down raises
    OperationalError here, which the error handler turns into 503.
    """

    def authenticate(self, request: Request) -> tuple[ApiKey, ApiKey]:
        lockout.check_address(request)
        scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 512:
            token = ""
        api_key = find_key(hash_key(token))
        if (
            api_key is None
            and token
            and settings.API_KEY
            and hmac.compare_digest(token.encode(), settings.API_KEY.encode())
        ):
            api_key = ensure_bootstrap_key(plaintext=token, owner_id=settings.API_KEY_OWNER_ID)
        if api_key is None or api_key.is_revoked or not token or self._retired(api_key, token):
            wait = lockout.record_failure(request)
            if wait is not None:
                raise lockout.TooManyFailures(wait=wait)
            # Its body is the same for every cause (memoryproject.errors.AUTH_REQUIRED).
            raise exceptions.AuthenticationFailed()
        self._touch(api_key)
        # For the request log and rate-limit headers.
        request._request.api_key = api_key  # type: ignore[attr-defined]
        return api_key, api_key

    @staticmethod
    def _retired(api_key: ApiKey, token: str) -> bool:
        """A key stored from API_KEY stops working once API_KEY no longer holds it."""
        if not api_key.prefix.startswith(BOOTSTRAP_PREFIX):
            return False
        return not hmac.compare_digest(token.encode(), settings.API_KEY.encode())

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"

    @staticmethod
    def _touch(api_key: ApiKey) -> None:
        """Write last_used_at at most about once a minute per key, not on every request."""
        now = timezone.now()
        if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
            return
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
