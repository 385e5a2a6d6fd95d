"""The stored form of an embedding vector: unit length, float16, packed bytes.

A 384-dimension vector takes 769 bytes before encryption, where full-precision JSON took
about 8 KB. Unit length makes cosine similarity a dot product; float16 keeps about three
significant digits, far finer than any ranking difference. Vectors stored by older
versions as JSON lists are still read (`backfill_embeddings` rewrites them).
"""

import json

import numpy as np
from numpy.typing import ArrayLike

FORMAT_FLOAT16 = b"\x01"


def normalised(vector: ArrayLike) -> np.ndarray:
    """vector as float32 of unit length (a zero vector stays zero)."""
    array = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(array))
    return array / norm if norm and np.isfinite(norm) else np.zeros_like(array)


def pack(vector: ArrayLike) -> bytes:
    return FORMAT_FLOAT16 + normalised(vector).astype("<f2").tobytes()


def unpack(raw: bytes) -> np.ndarray:
    """A unit-length float32 vector from pack()'s bytes or a legacy JSON list."""
    if raw[:1] == FORMAT_FLOAT16:
        return np.frombuffer(raw, dtype="<f2", offset=1).astype(np.float32)
    return normalised(json.loads(raw))


def is_packed(raw: bytes) -> bool:
    return raw[:1] == FORMAT_FLOAT16
