"""CSV export of audit events in constant memory: rows are read in chunks and written as they come.

Every CSV the portal writes comes from here and is safe to open in a spreadsheet: `defusedcsv` quotes a cell
that starts with = + - @ | % (OWASP CSV injection); a leading tab or carriage return, which it lets through,
is quoted the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from defusedcsv import csv
from django.db.models import QuerySet

from audit.models import EVENT_FIELDS, AuditEvent

CSV_COLUMNS = EVENT_FIELDS
CHUNK_SIZE = 2000
_JSON_COLUMNS = {CSV_COLUMNS.index("changes"), CSV_COLUMNS.index("data")}
_AT_COLUMN = CSV_COLUMNS.index("at")


class _Echo:
    """A file-like object whose write() hands the line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    """The header, then one CSV line per event; the queryset is fetched `CHUNK_SIZE` rows at a time."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for row in events.values_list(*CSV_COLUMNS).iterator(chunk_size=CHUNK_SIZE):
        yield writer.writerow(_cells(row))


def _cells(row: tuple[Any, ...]) -> list[Any]:
    cells = list(row)
    cells[_AT_COLUMN] = cells[_AT_COLUMN].isoformat()
    for i in _JSON_COLUMNS:
        cells[i] = json.dumps(cells[i], sort_keys=True, ensure_ascii=False)
    return [f"'{cell}" if isinstance(cell, str) and cell.startswith(("\t", "\r")) else cell for cell in cells]
