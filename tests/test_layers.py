"""The three floors: trendbot/ (the app layer) over adapters/ over bot/ (the core); each imports only below it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"bot": 0, "adapters": 1, "trendbot": 2}
CHAT_LIBRARIES = ("slack_bolt", "slack_sdk", "discord", "aiohttp")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from trendbot import serve`
    return found


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).glob("*.py"))


@pytest.mark.parametrize("package", FLOORS)
def test_each_floor_imports_only_the_floors_below(package):
    for path in files(package):
        for name in imports(path):
            top = name.split(".")[0]
            if top in FLOORS:
                assert FLOORS[top] <= FLOORS[package], f"{path.relative_to(ROOT)} imports {name} from a higher floor"


def test_the_core_imports_no_chat_library():
    for path in files("bot"):
        used = {name.split(".")[0] for name in imports(path)}
        assert not used & set(CHAT_LIBRARIES), f"{path.relative_to(ROOT)} imports {used & set(CHAT_LIBRARIES)}"


def test_only_the_registry_names_the_platform_modules():
    for path in files("trendbot"):
        named = {n for n in imports(path) if n in ("adapters.slack_app", "adapters.discord_app")}
        assert not named or path.name == "registry.py", f"{path.relative_to(ROOT)} imports {named}"
    text = (ROOT / "trendbot" / "registry.py").read_text(encoding="utf-8")
    assert '"adapters.slack_app"' in text and '"adapters.discord_app"' in text


def test_no_import_circle_between_files():
    modules = {f"{p.parent.name}.{p.stem}": p for pkg in FLOORS for p in files(pkg)}
    graph = {m: {n for n in imports(p) if n in modules and n != m} for m, p in modules.items()}
    seen: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        seen[m] = 1
        for n in graph[m]:
            assert seen.get(n) != 1, " -> ".join([*path, m, n])
            if n not in seen:
                visit(n, [*path, m])
        seen[m] = 2

    for m in modules:
        if m not in seen:
            visit(m, [])
