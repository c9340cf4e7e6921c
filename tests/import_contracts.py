"""The import-linter contract type the project adds (`contract_types` in pyproject.toml); `lint-imports` loads it.

`acyclic_modules`: no module of the given packages imports itself back round a loop. It reads the graph grimp
builds, which holds every import statement, those inside functions too, and it looks across packages, where the
built-in `acyclic_siblings` (the children of one package at a time) cannot see a loop such as
services.actions -> clusters.enqueue -> clusters.tasks -> clusters.converge -> services.actions.
"""

from __future__ import annotations

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class AcyclicModulesContract(Contract):
    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        roots = tuple(self.packages)  # type: ignore[arg-type]
        inside = sorted(m for m in graph.modules if m.partition(".")[0] in roots)
        seen: set[str] = set()
        loops: list[list[tuple[str, str, list[int]]]] = []
        for module in inside:
            if module in seen:
                continue
            # The modules `module` reaches and that reach it back: its loops run through them only.
            component = graph.find_upstream_modules(module) & graph.find_downstream_modules(module)
            if not component:
                continue
            seen.update(component)
            loop = _shortest_loop(graph, module, component)
            loops.append(
                [
                    (
                        importer,
                        imported,
                        sorted(
                            d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)
                        ),
                    )
                    for importer, imported in zip(loop, loop[1:], strict=False)
                ]
            )
        return ContractCheck(kept=not loops, metadata={"loops": loops})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for loop in check.metadata["loops"]:
            output.print_error(f"{loop[0][0]} imports itself back:", bold=True)
            output.new_line()
            for importer, imported, lines in loop:
                output.indent_cursor()
                output.print_error(f"{importer} -> {imported} (l.{', '.join(map(str, lines))})", bold=False)
            output.new_line()


def _shortest_loop(graph: grimp.ImportGraph, module: str, component: set[str]) -> tuple[str, ...]:
    """module -> ... -> module, as short as the graph allows."""
    chains = (
        graph.find_shortest_chain(importer=first, imported=module)
        for first in sorted(graph.find_modules_directly_imported_by(module) & component)
    )
    return (module, *min((chain for chain in chains if chain), key=len))
