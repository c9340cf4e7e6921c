from rest_framework.parsers import BaseParser

from gatewayportal.parsers import body_text


class YAMLTextParser(BaseParser):
    """Hands the raw YAML text to the view; the import decides what each document means."""

    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None) -> str:
        return body_text(stream, parser_context, "YAML")


class YAMLAliasParser(YAMLTextParser):
    media_type = "application/x-yaml"
