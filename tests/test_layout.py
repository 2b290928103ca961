"""The shape of the code: no import cycles, one home for SQL, one consent rule, a light CLI.

These read the source (``ast``) and import modules in a fresh interpreter; they fail on the
first module that breaks a rule and name it.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from filters.chain import ChainContext, Item
from filters.consent import consent_gate
from gateway.privacy.consent import ConsentRegistry, ConsentRule
from gateway.privacy.restriction import Restrictions
from gateway.storage.outbox import CATEGORY_NOTICE, QueuedItem

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "devices", "filters")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every first-party module this file imports when it runs: at the top and inside
    functions (lazy imports count). Imports under ``TYPE_CHECKING`` never run; annotations may
    name a module in either direction."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    named: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                named.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
    return {name for name in named if name in MODULES}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _cycle_from(start: str) -> list[str] | None:
    """A path start -> ... -> start through the import graph, if there is one."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        module, path = stack.pop()
        for imported in GRAPH[module]:
            if imported == start:
                return [*path, start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, [*path, imported]))
    return None


def test_no_module_imports_itself_through_others_lazy_imports_included():
    cycles = [cycle for name in sorted(GRAPH) if (cycle := _cycle_from(name))]
    assert cycles == [], " -> ".join(cycles[0]) if cycles else ""


# The one shared model module every layer may import (DESIGN.md section 1).
SHARED_MODELS = "gateway.models"


def test_devices_and_filters_import_nothing_from_gateway():
    leaks = {
        name: sorted(m for m in imported if m.startswith("gateway") and m != SHARED_MODELS)
        for name, imported in GRAPH.items()
        if name.startswith(("devices", "filters"))
    }
    assert {name: found for name, found in leaks.items() if found} == {}


def test_the_api_depends_on_the_hub_interface_not_on_the_gateway_object():
    reaching = {name for name, imported in GRAPH.items() if name.startswith("gateway.api")}
    assert {name for name in reaching if "gateway.app" in GRAPH[name]} == set()
    assert "gateway.app" not in GRAPH["gateway.metrics"]


def _database_calls(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method in {"execute", "executemany", "executescript"} or (
                method == "connect"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "sqlite3"
            ):
                lines.append(node.lineno)
    return lines


def test_no_sql_runs_outside_the_storage_package():
    outside = {
        str(path.relative_to(REPO)): lines
        for name, path in MODULES.items()
        if name.startswith("gateway") and not name.startswith("gateway.storage")
        for lines in [_database_calls(path)]
        if lines
    }
    assert outside == {}


@pytest.mark.parametrize("module", ["gateway.cli", "gateway.client"])
def test_the_command_line_loads_no_server_metrics_or_prometheus(module):
    probe = (
        f"import sys, {module}\n"
        "heavy = ('gateway.api.server', 'gateway.metrics', 'prometheus_client', 'aiohttp.web',"
        " 'gateway.app')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == ""


def _queued(category: str, legal_basis: str) -> QueuedItem:
    return QueuedItem(
        1, "d", "analytics", category, "s-1", "r-1", "r-1", legal_basis, (), b"{}", 0, 0.0
    )


def test_the_consent_rule_decides_alike_when_queuing_and_when_sending():
    for granted, restricted, category, vital in itertools.product(
        (True, False), (True, False), ("reading", "alert"), (True, False)
    ):
        consents, restrictions = ConsentRegistry(), Restrictions()
        consents.apply("s-1", {"analytics": granted})
        restrictions.apply("s-1", restricted)
        rule = ConsentRule(consents, restrictions)
        context = ChainContext("d", "analytics", consents.is_granted, restrictions.is_restricted)
        queued = consent_gate(Item("r-1", "s-1", category, {}, vital_interest=vital), context)
        case = (granted, restricted, category, vital)
        if queued is None:
            assert rule.basis("s-1", "analytics", category=category, vital_interest=vital) is None
            continue
        assert queued.legal_basis == ("consent" if granted else "vital_interest"), case
        assert rule.may_send(_queued(category, queued.legal_basis)), case
        # ... and a withdrawal or restriction while it waits stops it at send time.
        consents.apply("s-1", {"analytics": False})
        restrictions.apply("s-1", True)
        assert not rule.may_send(_queued(category, queued.legal_basis)), case
        # A "monitoring stopped" notice to the care team has its own legal basis.
        assert rule.may_send(_queued(CATEGORY_NOTICE, "care_continuity")), case
