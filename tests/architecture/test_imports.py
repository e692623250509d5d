"""The house's import rules, read from the source with `ast`: no circles, no Flask in the domain,
and each domain package importing only the packages before it (webapp/services/__init__.py)."""

import ast
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["webapp", "tasks", "devstack", "worker.py", "wsgi.py"]
# The order written in webapp/services/__init__.py: a package may import those before it.
SERVICE_LAYERS = [
    "errors",
    "audit",
    "scheduling",
    "validation",
    "accounts",
    "jobs",
    "recurring",
    "delivery",
    "monitoring",
]


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules():
    """{module name: path} for every module of the app, its tasks and its dev tools."""
    found = {}
    for source in SOURCES:
        path = ROOT / source
        for file in [path] if path.suffix == ".py" else sorted(path.rglob("*.py")):
            found[module_name(file)] = file
    return found


@functools.cache
def imported_names(path):
    """Every module name an import statement in `path` names, at any depth (deferred imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def import_graph():
    """{module: the project's modules it imports} (a package's __init__ counts as importing nothing else)."""
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        named = imported_names(path) & modules.keys()
        # `from pkg import module` imports the module; the package's own __init__ is not counted.
        targets = {imported for imported in named if not any(other.startswith(imported + ".") for other in named)}
        targets.discard(name)
        graph[name] = targets
    return graph


def circles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_is_part_of_an_import_circle():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_domain_imports_no_flask_not_even_through_another_module():
    modules = project_modules()
    graph = import_graph()
    offenders = {}
    for name in (n for n in modules if n.startswith("webapp.services")):
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            flask_imports = {
                i
                for i in imported_names(modules[current])
                if i.split(".")[0] == "flask" or i.split(".")[0].startswith("flask_")
            }
            if flask_imports:
                offenders[name] = (current, sorted(flask_imports))
                break
            todo.extend(graph[current])
    assert offenders == {}


def layer_of(module):
    parts = module.split(".")
    if parts[:2] != ["webapp", "services"] or len(parts) < 3:
        return None
    return SERVICE_LAYERS.index(parts[2])


def test_each_domain_package_imports_only_the_packages_before_it():
    graph = import_graph()
    wrong = []
    for module, targets in graph.items():
        own = layer_of(module)
        if own is None:
            continue
        for target in targets:
            if target.startswith("webapp.") and target.split(".")[1] in (
                "app",
                "web",
                "api",
                "pages",
                "admin",
                "auth",
                "cli",
                "metrics",
                "extensions",
            ):
                wrong.append((module, target))
            elif target.startswith(("tasks", "worker", "devstack")):
                wrong.append((module, target))
            elif (layer := layer_of(target)) is not None and layer > own:
                wrong.append((module, target))
    assert wrong == []


def test_every_domain_package_is_in_the_written_order():
    packages = {
        p.name if p.is_dir() else p.stem
        for p in (ROOT / "webapp" / "services").iterdir()
        if p.name != "__init__.py" and p.name != "__pycache__"
    }
    assert packages == set(SERVICE_LAYERS)


def test_the_mail_adapter_imports_nothing_from_the_domain():
    graph = import_graph()
    assert {
        (m, t) for m, ts in graph.items() if m.startswith("webapp.mail") for t in ts if t.startswith("webapp.services")
    } == set()


def test_the_queue_and_the_tasks_never_import_the_app_factory():
    graph = import_graph()
    assert {
        (m, t)
        for m, ts in graph.items()
        if m.startswith("tasks")
        for t in ts
        if t == "webapp.app" or t.startswith(("webapp.api", "webapp.pages", "webapp.admin", "worker"))
    } == set()
