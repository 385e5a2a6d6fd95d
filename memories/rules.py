"""Rules-mode ingestion: a deterministic grammar for structured memory content.

Grammar (the whole content, one pair):

    TYPE ":" KEY "=" VALUE

- TYPE is a memory type (fact, preference, event, system; case-insensitive); spaces
  around TYPE, KEY and VALUE are ignored.
- KEY is everything between the first ":" and the first "=" after it: 1 to
  MAX_ID_CHARS (255) characters, no line breaks.
- VALUE is everything after that first "=", so "=" and ":" need no escaping inside it.
  It becomes a JSON scalar when it parses as one (42, 3.5, true, false, null,
  "quoted string"), otherwise the text itself. Line breaks are not allowed.

Content that does not match is stored as written and nothing is derived from it.
"""

import json
import math
from dataclasses import dataclass

from memories.models import MAX_ID_CHARS, MemoryType

# Characters that may not appear inside KEY or VALUE (spaces around them are trimmed).
_LINE_BREAKS = ("\r", "\n")


@dataclass(frozen=True)
class Rule:
    type: str
    key: str
    value: object


def _scalar(text: str):
    if text[:1] in ("[", "{"):
        return text  # arrays and objects stay text; parsing them could nest without bound
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if isinstance(parsed, (dict, list)):
        return text
    if isinstance(parsed, float) and not math.isfinite(parsed):
        return text
    if isinstance(parsed, str) and any("\ud800" <= c <= "\udfff" for c in parsed):
        return text  # "\ud800" decodes to a lone surrogate, which cannot be stored
    return parsed


def _split(content: str) -> tuple[str, str, str] | None:
    """TYPE, KEY and VALUE of content, trimmed, or None. Linear in the content's length:
    two find() calls and three strip() calls, no backtracking."""
    head = content.lstrip()
    letters = 0
    while letters < len(head) and head[letters].isascii() and head[letters].isalpha():
        letters += 1
    rest = head[letters:].lstrip()
    if not letters or not rest.startswith(":"):
        return None
    equals = rest.find("=")
    if equals < 0:
        return None
    key, value = rest[1:equals].strip(), rest[equals + 1 :].strip()
    if any(mark in key or mark in value for mark in _LINE_BREAKS):
        return None
    return head[:letters], key, value


def parse_rule(content: str) -> Rule | None:
    """The rule in content, or None when content does not follow the grammar."""
    parts = _split(content)
    if parts is None:
        return None
    memory_type, key, value = parts
    memory_type = memory_type.lower()
    if memory_type not in MemoryType.values or not key or len(key) > MAX_ID_CHARS:
        return None
    return Rule(type=memory_type, key=key, value=_scalar(value))
