"""`manage.py validate_gateway FILE|-`: Istio's admission verdict on Gateway manifests, offline.

Exit 0 when every document is valid, 1 when any is invalid, 2 when the input cannot be read or parsed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gatewayportal import yamlsafe
from services.importing import expand_documents
from services.validation.istio import Issue, validate_gateway

EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def read_documents(text: str) -> list[Any]:
    """Every non-empty document of a YAML stream (JSON is read the same way); a JSON list or a `kind: List`
    (what `kubectl get -o yaml` prints) stands for its items."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError:
            pass  # YAML flow style also starts with '{' or '['; let the YAML parser judge it.
        else:
            return expand_documents(loaded if isinstance(loaded, list) else [loaded])
    return expand_documents([document for document in yamlsafe.load_all(text) if document is not None])


def document_report(index: int, document: Any) -> dict[str, Any]:
    issues = validate_gateway(document)
    metadata = document.get("metadata") if isinstance(document, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    errors = [_entry(issue) for issue in issues if issue.severity == "error"]
    return {
        "document": index,
        "name": str(name) if name else "",
        "valid": not errors,
        "errors": errors,
        "warnings": [_entry(issue) for issue in issues if issue.severity == "warning"],
    }


def _entry(issue: Issue) -> dict[str, str]:
    return {"path": issue.path, "message": issue.message}


class Command(BaseCommand):
    help = "Validate Istio Gateway manifests (YAML or JSON, one or many documents) with Istio's admission rules."
    # Pure file-in, verdict-out: nothing here depends on the project's system checks passing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path of a YAML or JSON file, or '-' for standard input.")
        parser.add_argument("--format", choices=["text", "json"], default="text", help="Output format.")

    def handle(self, *args: Any, **options: Any) -> None:
        text = self._read(options["file"])
        try:
            documents = read_documents(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise CommandError(f"cannot parse {options['file']}: {exc}", returncode=EXIT_UNREADABLE)
        if not documents:
            raise CommandError(f"{options['file']} holds no document", returncode=EXIT_UNREADABLE)
        reports = [document_report(index, document) for index, document in enumerate(documents)]
        if options["format"] == "json":
            self.stdout.write(json.dumps(reports, indent=2))
        else:
            self._write_text(reports)
        invalid = [report for report in reports if not report["valid"]]
        if invalid:
            raise CommandError(f"{len(invalid)} of {len(reports)} document(s) invalid", returncode=EXIT_INVALID)

    def _read(self, path: str) -> str:
        try:
            if path == "-":
                return sys.stdin.read()
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}", returncode=EXIT_UNREADABLE)

    def _write_text(self, reports: list[dict[str, Any]]) -> None:
        for report in reports:
            prefix = f"{report['document']} {report['name'] or '-'}"
            for entry in report["errors"]:
                self.stdout.write(f"{prefix}: {entry['path']}: {entry['message']}")
            for entry in report["warnings"]:
                self.stdout.write(f"{prefix}: {entry['path']}: warning: {entry['message']}")
