from collections.abc import Iterable, Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, plus a 400 for bodies nested too deeply for the decoder."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class JsonOnlyNegotiation(DefaultContentNegotiation):
    """Every answer is JSON, whatever Accept says: a client asking for text/event-stream
    (streamed chat) or text/html gets JSON errors instead of a 406. Streams are not
    rendered by DRF, so they keep their own content type."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type
