"""The import graph keeps the layers (CONTRIBUTING.md, "Where code goes"): ``incidents`` is the
ground floor and imports no other app; no two apps import each other; inside
``notifications`` the modules import one another in one direction only.

Every import counts: module level, inside functions, and under ``TYPE_CHECKING``. The lifecycle
reaches the apps above it only through ``settings.LIFECYCLE_HOOKS`` (``incidents.lifecycle``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
APPS = ("incidents", "triage", "notifications", "postmortems", "dashboard")
#: Apps that the ground floor must never import.
ABOVE_INCIDENTS = ("triage", "notifications", "postmortems", "dashboard")


def _modules(app: str) -> dict[str, Path]:
    """``{dotted module name: path}`` of every Python module of ``app``, migrations included."""
    root = REPOSITORY / app
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPOSITORY).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _walk(node: ast.AST, *, annotations: bool):
    """``ast.walk``, leaving out ``if TYPE_CHECKING:`` blocks unless ``annotations``."""
    for child in ast.iter_child_nodes(node):
        if not annotations and _is_type_checking_block(child):
            continue
        yield child
        yield from _walk(child, annotations=annotations)


def _imported_names(path: Path, module: str, *, annotations: bool = True) -> set[str]:
    """Every module name ``path`` imports, anywhere in the file (relative imports resolved).

    ``annotations=False`` leaves out imports made only for type annotations
    (``if TYPE_CHECKING:``), which are no dependency at run time.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _walk(tree, annotations=annotations):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            # ``from notifications import services`` imports the module notifications.services.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _app_graph() -> dict[str, dict[str, list[str]]]:
    """``{app: {other app: [modules of app importing it]}}``."""
    graph: dict[str, dict[str, list[str]]] = {app: defaultdict(list) for app in APPS}
    for app in APPS:
        for module, path in _modules(app).items():
            for name in _imported_names(path, module):
                other = name.split(".")[0]
                if other in APPS and other != app and module not in graph[app][other]:
                    graph[app][other].append(module)
    return graph


def test_it_finds_imports_at_every_depth(tmp_path):
    """The walker sees module-level, function-local, relative and TYPE_CHECKING imports, so the
    layer tests below cannot pass by missing one."""
    source = tmp_path / "example.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import notifications.models\n"
        "if TYPE_CHECKING:\n"
        "    from postmortems.models import PostMortem\n"
        "def f():\n"
        "    from triage import services\n"
        "    from .tasks import x\n"
    )
    names = _imported_names(source, "incidents.example")
    assert {"notifications.models", "postmortems.models", "triage.services", "incidents.tasks"} <= names
    run_time = _imported_names(source, "incidents.example", annotations=False)
    assert "postmortems.models" not in run_time
    assert {"notifications.models", "triage.services", "incidents.tasks"} <= run_time


def test_incidents_imports_no_app_above_it():
    offenders = {
        other: modules for other, modules in _app_graph()["incidents"].items() if other in ABOVE_INCIDENTS
    }
    assert offenders == {}, (
        "incidents is the ground floor; register a lifecycle hook in settings.LIFECYCLE_HOOKS "
        f"instead of importing: {offenders}"
    )


def test_no_two_apps_import_each_other():
    graph = _app_graph()
    mutual = sorted(
        (app, other, graph[app][other], graph[other][app])
        for app in APPS
        for other in graph[app]
        if app < other and app in graph[other]
    )
    assert mutual == []


def test_the_apps_import_graph_has_no_cycle():
    graph = {app: set(edges) for app, edges in _app_graph().items()}
    assert _cycle(graph) is None


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or ``None`` if it is acyclic."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "visiting"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "visiting":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_it_detects_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("app", APPS)
def test_the_modules_of_an_app_import_each_other_in_one_direction(app):
    """Run-time imports only: a module may name another's class in an annotation
    (``if TYPE_CHECKING:``) that imports it back (models and their guards do)."""
    modules = _modules(app)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        # A package's __init__ is what ``from app import x`` resolves through; the app's own
        # package name is not a dependency on every module.
        graph[module] = {
            name
            for name in _imported_names(path, module, annotations=False)
            if name in modules and name not in (module, app)
        }
    assert _cycle(graph) is None


def test_every_task_queued_by_name_is_a_registered_task():
    """Services queue tasks of the module above them by name (``config.celery.enqueue``); a
    misspelt name would only fail in a worker, so every such name is checked here."""
    from config.celery import app

    named = set()
    for package in APPS:
        for module, path in _modules(package).items():
            tree = ast.parse(path.read_text(), filename=str(path))
            constants = {
                target.id: node.value.value
                for node in ast.walk(tree)
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                for target in node.targets
                if isinstance(target, ast.Name) and isinstance(node.value.value, str)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "enqueue" and node.args:
                    first = node.args[0]
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        named.add((module, first.value))
                    elif isinstance(first, ast.Name) and first.id in constants:
                        named.add((module, constants[first.id]))
    assert named, "expected the notification services to queue tasks by name"
    unknown = sorted((module, name) for module, name in named if name not in app.tasks)
    assert unknown == []


def test_the_lifecycle_hook_table_resolves_and_rejects_unknown_moments(settings):
    from django.core.exceptions import ImproperlyConfigured

    from incidents import lifecycle

    resolved = lifecycle.hook_table()
    assert [hook.__module__ for hook in resolved[("declare", "saved")]] == [
        "notifications.lifecycle",
        "dashboard.lifecycle",
        "incidents.webhooks",
    ]
    settings.LIFECYCLE_HOOKS = {
        "declared": {"saved": ["notifications.lifecycle.start_clocks_on_declaration"]}
    }
    with pytest.raises(ImproperlyConfigured, match="unknown moment 'declared'"):
        lifecycle.hook_table()
    settings.LIFECYCLE_HOOKS = {"declare": {"saved": ["notifications.lifecycle.no_such_hook"]}}
    with pytest.raises(ImproperlyConfigured, match="no_such_hook"):
        lifecycle.hook_table()


def test_no_app_imports_the_dashboard():
    """The dashboard is the top floor: it reads the apps below; none of them imports it."""
    graph = _app_graph()
    offenders = {
        app: graph[app]["dashboard"] for app in APPS if app != "dashboard" and "dashboard" in graph[app]
    }
    assert offenders == {}
