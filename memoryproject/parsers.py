from rest_framework.exceptions import ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, plus a 400 for bodies nested too deeply for the decoder."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class JsonOnlyNegotiation(DefaultContentNegotiation):
    """Every answer is JSON, whatever Accept says: a client asking for text/event-stream
    (streamed chat) or text/html gets JSON errors instead of a 406. Streams are not
    rendered by DRF, so they keep their own content type."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
