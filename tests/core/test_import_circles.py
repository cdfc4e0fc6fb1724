"""No import circles in the package: no two modules that import each other, directly or through
others, typing-only imports (under `if TYPE_CHECKING:`) included, since a reader has to read
such a pair together all the same. grimp (installed with import-linter) builds the graph."""

from __future__ import annotations

import grimp


def circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """For each module that directly imports a module later in name order which imports it back
    (through any chain), that circle: every circle has such a pair, since it cannot always go
    down in name order, so none is missed."""
    modules = sorted(graph.modules)
    found: list[list[str]] = []
    for low in modules:
        for high in modules:
            if low >= high or not graph.direct_import_exists(
                importer=low, imported=high, as_packages=False
            ):
                continue
            back = graph.find_shortest_chain(importer=high, imported=low)
            if back is not None:
                found.append([low, *back])
    return found


def test_the_package_has_no_import_circles() -> None:
    graph = grimp.build_graph("thingstash")
    assert circles(graph) == []


def test_a_circle_is_found_through_other_modules() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=importer, imported=imported)
    assert circles(graph) == [["p.a", "p.b", "p.c", "p.a"], ["p.b", "p.c", "p.a", "p.b"]]
    graph.remove_import(importer="p.c", imported="p.a")
    assert circles(graph) == []
