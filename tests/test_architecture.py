"""The import contracts in pyproject.toml (docs/architecture.md) hold, and a violation of each kind breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gatewayportal", "services", "clusters", "audit", "ticketing", "kubesim")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, contract: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--contract", contract],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _contract_ids() -> list[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [contract["id"] for contract in config["tool"]["importlinter"]["contracts"]]


@pytest.mark.parametrize("contract", _contract_ids())
def test_the_tree_keeps_its_contracts(contract: str) -> None:
    result = _lint(ROOT, contract)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the project's packages and contracts (with the contract type the project adds), to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "templates"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "tests").mkdir()
    for name in ("__init__.py", "import_contracts.py"):
        shutil.copy(ROOT / "tests" / name, tmp_path / "tests" / name)
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("services/rendering.py", "from services.models import GatewayService", "pure"),
        ("clusters/reconcile.py", "from django.db import transaction", "pure"),
        ("services/specs.py", "from rest_framework import serializers", "pure"),
        ("services/conflicts.py", "import celery", "pure"),
        ("clusters/selectors.py", "import kubernetes", "kube-adapter"),
        ("kubesim/store.py", "import clusters.models", "kubesim-standalone"),
        ("gatewayportal/context.py", "import services.models", "project-package"),
        ("services/selectors.py", "from clusters import converge", "services-boundaries"),
        ("clusters/selectors.py", "from clusters import converge", "worker"),
        # The loop services.actions -> clusters.enqueue -> clusters.tasks -> clusters.converge -> services.actions,
        # closed inside a function as it once was.
        ("clusters/enqueue.py", "def _task(): from clusters.tasks import reconcile_gateway", "worker"),
        ("clusters/enqueue.py", "def _task(): from clusters.tasks import reconcile_gateway", "no-module-cycles"),
        ("audit/actions.py", "def _team(): from services.actions import team_save", "no-module-cycles"),
        ("ticketing/actions.py", "from services.api import serializers", "ticketing-boundaries"),
        ("audit/selectors.py", "import clusters.admin", "audit-boundaries"),
        ("clusters/enqueue.py", "from clusters import tasks", "no-cycles"),
    ],
)
def test_a_deliberate_violation_breaks_its_contract(tree: Path, module: str, line: str, contract: str) -> None:
    # The copy is the tree that test_the_tree_keeps_its_contracts checks: only this line breaks it.
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tree, contract)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
