"""An import-linter contract type that the built-in ones lack, named in pyproject.toml's
``[tool.importlinter] contract_types``: ``private_names``. No module imports a private
name (``_x``, not a dunder) from a module of another root package, e.g.
``from exporters.sqlite_exporter import _signed`` in dash_ui. (The built-in
``private_modules`` covers ``_x`` modules; this covers the names inside public ones.)"""
from __future__ import annotations

import ast
import functools
import importlib.util
import pathlib

import grimp
from importlinter.application import output
from importlinter.domain.contract import Contract, ContractCheck


class PrivateNamesContract(Contract):
    type_name = "private_names"

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        roots = set(self.session_options["root_packages"])
        found: list[str] = []
        for importer in sorted(m for m in graph.modules if _root(m) in roots):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if _root(imported) == _root(importer) or _root(imported) not in roots:
                    continue  # within one package, private names are fine
                lines = {d["line_number"] for d in
                         graph.get_import_details(importer=importer, imported=imported)}
                names = _private_names(importer, imported, frozenset(lines))
                if names:
                    found.append(f"- {importer} -> {imported}: {', '.join(names)} "
                                 f"(l.{', '.join(map(str, sorted(lines)))})")
        return ContractCheck(kept=not found, metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Private names may only be imported from within their package:",
                           bold=False)
        output.new_line()
        for line in check.metadata["found"]:
            output.print_error(line, bold=False)
            output.new_line()


def _root(module: str) -> str:
    return module.partition(".")[0]


@functools.cache
def _tree(module: str) -> ast.Module:
    # The root package's directory without importing it (a top-level find_spec runs
    # nothing), then the module's file under it.
    spec = importlib.util.find_spec(_root(module))
    assert spec and spec.submodule_search_locations, module
    path = pathlib.Path(list(spec.submodule_search_locations)[0], *module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return ast.parse(path.read_text(), str(path))


def _private_names(importer: str, imported: str, lines: frozenset[int]) -> list[str]:
    return sorted({alias.name for node in ast.walk(_tree(importer))
                   if isinstance(node, ast.ImportFrom) and node.level == 0
                   and node.module == imported
                   and any(node.lineno <= n <= (node.end_lineno or node.lineno) for n in lines)
                   for alias in node.names
                   if alias.name.startswith("_") and not alias.name.startswith("__")})
