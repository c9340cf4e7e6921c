from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


class YAMLTextParser(BaseParser):
    """Hands the raw YAML text to the view; the import decides what each document means."""

    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None) -> str:
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            return stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"The YAML body is not valid {encoding} text.") from exc


class YAMLAliasParser(YAMLTextParser):
    media_type = "application/x-yaml"
