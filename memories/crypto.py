"""Encryption at rest: MultiFernet over ENCRYPTION_KEY (first key encrypts, all decrypt)."""

import base64
import functools
import hmac
import json
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from rest_framework import exceptions, status

logger = logging.getLogger(__name__)


class UndecryptableData(exceptions.APIException):
    """A stored token that no configured key opens: a key went missing from ENCRYPTION_KEY."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_detail = (
        "Stored memory data could not be decrypted: ENCRYPTION_KEY does not contain the key "
        "it was encrypted with. An operator must restore that key."
    )
    default_code = "undecryptable"


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def encrypt_text(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_text(token: str) -> str:
    try:
        return decrypt_bytes(token).decode("utf-8")
    except UnicodeError:
        logger.error("memory token could not be decrypted with any ENCRYPTION_KEY key")
        raise UndecryptableData() from None


def encrypt_bytes(plaintext: bytes) -> str:
    return fernet().encrypt(plaintext).decode("ascii")


def decrypt_bytes(token: str) -> bytes:
    try:
        return fernet().decrypt(token.encode("ascii"))
    except (InvalidToken, ValueError):
        logger.error("memory token could not be decrypted with any ENCRYPTION_KEY key")
        raise UndecryptableData() from None


def encrypt_json(value) -> str:
    return encrypt_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def decrypt_json(token: str):
    return json.loads(decrypt_text(token))


@functools.lru_cache(maxsize=8)
def _derive(key: str, purpose: bytes) -> bytes:
    raw = base64.urlsafe_b64decode(key.encode("ascii"))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(raw)


def index_keys() -> list[bytes]:
    """Keys for the blind term index, one per encryption key, primary first."""
    return [_derive(k, b"memory-term-index-v1") for k in settings.ENCRYPTION_KEYS]


def request_hash_keys() -> list[bytes]:
    """Keys for hashing requests sent with an Idempotency-Key, primary first."""
    return [_derive(k, b"idempotency-request-v1") for k in settings.ENCRYPTION_KEYS]


def keyed_hash64(key: bytes, message: bytes) -> int:
    """First 8 bytes of HMAC-SHA256 as a signed 64-bit integer (fits a bigint column)."""
    digest = hmac.digest(key, message, "sha256")  # one-shot: several times hmac.new's speed
    return int.from_bytes(digest[:8], "big", signed=True)
