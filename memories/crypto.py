"""Encryption at rest, keyed by ENCRYPTION_KEY (a comma-separated list of Fernet keys:
the first encrypts, all decrypt).

Data is written as an envelope: AES-256-GCM under a key derived (HKDF-SHA256) from one
ENCRYPTION_KEY key, as standard base64 of

    version (1 byte, 0x01) | key id (4 bytes) | nonce (12 random bytes) | ciphertext | tag

The version and key id are authenticated as associated data; the key id says which key
opens the envelope, so reading never tries keys one by one. A fresh random nonce per
envelope is safe for about 2**32 envelopes per key (NIST SP 800-38D); rotating the key
starts the count again.

Fernet tokens written by earlier versions are still read: they start with "g" (the 0x80
version byte), which no envelope does ("A", the 0x01 version byte).
"""

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import os
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from rest_framework import exceptions, status

logger = logging.getLogger(__name__)

ENVELOPE_VERSION = b"\x01"
KEY_ID_BYTES = 4
NONCE_BYTES = 12
_HEADER_BYTES = len(ENVELOPE_VERSION) + KEY_ID_BYTES


class UndecryptableData(exceptions.APIException):
    """Stored data that no configured key opens: a key went missing from ENCRYPTION_KEY."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_detail = (
        "Stored memory data could not be decrypted: ENCRYPTION_KEY does not contain the key "
        "it was encrypted with. An operator must restore that key."
    )
    default_code = "undecryptable"


class _Keyring(NamedTuple):
    header: bytes  # version and key id of the first key, which seals
    sealer: AESGCM
    openers: dict[bytes, list[AESGCM]]  # key id -> the keys with that id (one, in practice)
    fernet: MultiFernet  # for data written before envelopes


@functools.lru_cache(maxsize=4)
def _keyring(keys: tuple[str, ...]) -> _Keyring:
    openers: dict[bytes, list[AESGCM]] = {}
    ids = []
    for key in keys:
        derived = _derive(key, b"memory-envelope-v1")
        key_id = hashlib.sha256(b"memory-envelope-key-id" + derived).digest()[:KEY_ID_BYTES]
        openers.setdefault(key_id, []).append(AESGCM(derived))
        ids.append(key_id)
    return _Keyring(
        header=ENVELOPE_VERSION + ids[0],
        sealer=openers[ids[0]][0],
        openers=openers,
        fernet=MultiFernet([Fernet(k) for k in keys]),
    )


def _undecryptable() -> UndecryptableData:
    logger.error("stored data could not be decrypted with any ENCRYPTION_KEY key")
    return UndecryptableData()


def encrypt_bytes(plaintext: bytes) -> str:
    """An envelope of plaintext under the first key."""
    ring = _keyring(tuple(settings.ENCRYPTION_KEYS))
    nonce = os.urandom(NONCE_BYTES)
    sealed = ring.sealer.encrypt(nonce, plaintext, ring.header)
    return binascii.b2a_base64(ring.header + nonce + sealed, newline=False).decode("ascii")


def decrypt_bytes(token: str) -> bytes:
    """The plaintext of an envelope or of an earlier version's Fernet token."""
    ring = _keyring(tuple(settings.ENCRYPTION_KEYS))
    if token.startswith("g"):
        try:
            return ring.fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, ValueError):
            raise _undecryptable() from None
    try:
        raw = binascii.a2b_base64(token)
    except (binascii.Error, ValueError):
        raise _undecryptable() from None
    header = raw[:_HEADER_BYTES]
    nonce, sealed = (
        raw[_HEADER_BYTES : _HEADER_BYTES + NONCE_BYTES],
        raw[_HEADER_BYTES + NONCE_BYTES :],
    )
    if header[:1] == ENVELOPE_VERSION and len(nonce) == NONCE_BYTES:
        for opener in ring.openers.get(header[1:], ()):
            try:
                return opener.decrypt(nonce, sealed, header)
            except InvalidTag:
                continue
    raise _undecryptable()


def encrypt_text(plaintext: str) -> str:
    return encrypt_bytes(plaintext.encode("utf-8"))


def decrypt_text(token: str) -> str:
    try:
        return decrypt_bytes(token).decode("utf-8")
    except UnicodeError:
        raise _undecryptable() from None


def encrypt_json(value) -> str:
    return encrypt_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def decrypt_json(token: str):
    return json.loads(decrypt_text(token))


@functools.lru_cache(maxsize=16)  # three purposes for each of a few keys
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
