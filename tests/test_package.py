"""The package's folders are its architecture: each import runs down the layers, never up, and no
module imports itself back through others (docs/architecture.md draws the same graph)."""

from __future__ import annotations

from alexnet.pipeline.imports import module_graph

# Bottom to top. "base": what every part shares (config, paper, the fidelity rule, errors, fileio, tables); cli, the
# stage scripts' and tools' contract, sits on top of everything it sets up, and the tools on it.
LAYERS = ("base", "pipeline", "runtime", "data", "model", "evaluation", "training", "analysis", "claims", "report",
          "cli", "tools")


def layer(module: str) -> str:
    top = module.split(".")[0]
    return top if top in LAYERS and top != "base" else "base"


def test_every_import_runs_down_the_layers():
    up = [f"{m} -> {d}" for m, deps in module_graph().items() for d in deps
          if LAYERS.index(layer(d)) > LAYERS.index(layer(m))]
    assert not up, up


def test_every_module_has_a_layer_and_the_base_is_small():
    graph = module_graph()
    base = sorted(m for m in graph if layer(m) == "base")
    assert base == ["config", "errors", "fidelity", "fileio", "paper", "tables"]
    assert {layer(m) for m in graph} == set(LAYERS)


def test_no_import_cycle():
    graph = module_graph()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            assert state.get(d) != 1, " -> ".join(path + [m, d])
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
