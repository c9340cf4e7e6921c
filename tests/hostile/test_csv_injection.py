"""CSV formula injection: text a caller controls (actor, ticket, object name) must never run as a spreadsheet formula.

Every CSV the portal writes goes through `audit.export.csv_lines`:
the API's `?format=csv` and `audit_report --format csv`.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.actions import audit_record
from tests.factories import api_client, make_user

pytestmark = pytest.mark.django_db

FORMULAS = ["=1+2;cmd|'calc'!A0", "+SUM(A1)", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://x")']
# A spreadsheet evaluates a cell whose first character is one of these (OWASP CSV injection).
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def record_hostile_events() -> None:
    for formula in FORMULAS:
        audit_record(
            action="webhook.refused",
            object_type="ticketing_source",
            object_repr=formula,
            team="payments",
            ticket=formula,
            actor=formula,
            data={"reason": formula},
        )


def assert_no_cell_is_a_formula(text: str) -> None:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(FORMULAS)
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(DANGEROUS), (column, cell)
    # Nothing is lost: the neutralized cell still shows the text after its quote.
    assert {row["actor"].removeprefix("'") for row in rows} == {f.replace("|", "\\|") for f in FORMULAS}


def test_api_csv_export_neutralizes_formulas():
    platform = make_user("root", platform=True)
    record_hostile_events()
    response = api_client(platform).get("/api/v1/audit-events/?format=csv")
    assert response.status_code == 200
    assert_no_cell_is_a_formula(b"".join(response.streaming_content).decode())


def test_audit_report_csv_neutralizes_formulas(tmp_path):
    record_hostile_events()
    out = tmp_path / "report.csv"
    since, until = timezone.now() - timedelta(days=1), timezone.now() + timedelta(days=1)
    call_command(
        "audit_report", "--since", since.isoformat(), "--until", until.isoformat(), "--format", "csv", "-o", str(out)
    )
    with out.open(newline="") as text:
        assert_no_cell_is_a_formula(text.read())
