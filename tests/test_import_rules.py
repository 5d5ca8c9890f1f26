"""The import rules of DESIGN.md §1 and §6, read from the source with ast (no Qt, no torch needed):

- ncsn_core never imports Qt, pyqtgraph or studio (the engine is headless);
- in studio only worker.py (the bridge) and jobs.py import torch;
- outside jobs.py, studio takes from ncsn_core only its configs (ncsn_core.config): everything else that
  touches the engine goes through jobs.py;
- jobs.py imports no Qt, and widgets import neither the bridge nor the tabs and the window above them;
- there are no import cycles (imports inside functions count).
"""
import ast
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
QT = ("PySide6", "shiboken6", "pyqtgraph")
TORCH = ("torch", "torchvision")
BRIDGE_AND_ABOVE = ("studio.worker", "studio.controller", "studio.tab", "studio.main_window", "studio.menus",
                    "studio.app")


def _modules() -> Dict[str, Path]:
    """Module name -> file, for every module of ncsn_core and studio."""
    out = {}
    for package in ("ncsn_core", "studio"):
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str) -> Iterator[Tuple[str, int]]:
    """(imported module, line) for every import statement of module `name`, relative ones made absolute."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import jobs` imports the module studio.jobs
                yield (f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base), node.lineno


def _check(rule) -> None:
    """Fail, listing 'file:line imports module', for every import that `rule(importer, imported)` rejects."""
    broken = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {imp}"
              for m in sorted(MODULES) for imp, line in _imports(m) if not rule(m, imp)]
    assert not broken, "imports that break the rule:\n" + "\n".join(broken)


def _top(module: str) -> str:
    return module.split(".")[0]


def test_ncsn_core_never_imports_qt_or_studio():
    _check(lambda m, imp: _top(m) != "ncsn_core" or _top(imp) not in QT + ("studio",))


def test_only_the_bridge_and_jobs_import_torch():
    allowed = ("studio.worker", "studio.jobs")
    _check(lambda m, imp: _top(m) != "studio" or _top(imp) not in TORCH or m in allowed)


def test_studio_takes_only_configs_from_ncsn_core_outside_jobs():
    _check(lambda m, imp: _top(m) != "studio" or m == "studio.jobs" or _top(imp) != "ncsn_core"
           or imp == "ncsn_core.config")


def test_jobs_has_no_qt_and_widgets_do_not_reach_up():
    _check(lambda m, imp: m != "studio.jobs" or _top(imp) not in QT)
    tabs = tuple(m for m in MODULES if m.endswith("_tab"))
    _check(lambda m, imp: not m.startswith("studio.widgets") or imp not in BRIDGE_AND_ABOVE + tabs)


def test_no_import_cycles():
    graph: Dict[str, Set[str]] = {m: {imp for imp, _ in _imports(m) if imp in MODULES and imp != m}
                                  for m in MODULES}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components: a component of 2+ modules is a cycle
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other: {cycles}"


def test_the_rules_see_relative_and_late_imports():
    """The checker itself: relative imports resolve to modules, imports inside functions are found."""
    found = set(_imports("studio.jobs"))
    assert any(imp == "ncsn_core.config" for imp, _ in found)
    assert any(imp == "torch" for imp, _ in found)                # imported inside the job functions
    assert any(imp == "studio.jobs" for imp, _ in _imports("studio.sample_tab"))   # `from . import jobs`
