"""Rules-mode ingestion: a deterministic grammar for structured memory content.

Grammar (the whole content, one pair):

    TYPE ":" KEY "=" VALUE

- TYPE is one of fact, preference, event, system (case-insensitive); spaces around
  TYPE, KEY and VALUE are ignored.
- KEY is everything between the first ":" and the first "=" after it: 1 to 255
  characters, no line breaks.
- VALUE is everything after that first "=", so "=" and ":" need no escaping inside it.
  It becomes a JSON scalar when it parses as one (42, 3.5, true, false, null,
  "quoted string"), otherwise the text itself. Line breaks are not allowed.

Content that does not match is stored as written and nothing is derived from it.
"""

import json
import math
import re
from dataclasses import dataclass

MEMORY_TYPES = ("fact", "preference", "event", "system")

_RULE = re.compile(
    r"^\s*(?P<type>[A-Za-z]+)\s*:\s*(?P<key>[^=\r\n]*?)\s*=\s*(?P<value>[^\r\n]*?)\s*$"
)


@dataclass(frozen=True)
class Rule:
    type: str
    key: str
    value: object


def _scalar(text: str):
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, (dict, list)):
        return text
    if isinstance(parsed, float) and not math.isfinite(parsed):
        return text
    if isinstance(parsed, str) and any("\ud800" <= c <= "\udfff" for c in parsed):
        return text  # "\ud800" decodes to a lone surrogate, which cannot be stored
    return parsed


def parse_rule(content: str) -> Rule | None:
    """The rule in content, or None when content does not follow the grammar."""
    match = _RULE.match(content)
    if not match:
        return None
    memory_type = match["type"].lower()
    key = match["key"]
    if memory_type not in MEMORY_TYPES or not key or len(key) > 255:
        return None
    return Rule(type=memory_type, key=key, value=_scalar(match["value"]))
