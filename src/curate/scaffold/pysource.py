"""Small, careful edits of Python source: add a base class, add an import, fit a line."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass

from curate.errors import ConfigurationError


@dataclass(frozen=True)
class ModelClass:
    """A mapped class found in a models module: its name, table and primary key."""

    name: str
    table: str
    pk_name: str
    pk_type: str
    """The primary key's Python type as written (``int``, ``uuid.UUID``…), or ``Any``."""
    required: dict[str, str]
    """Columns a new row needs (not nullable, no default), name → Python type."""


def fit(line: str, wrapped: str, limit: int) -> str:
    """``line`` when it fits in ``limit`` characters, else its ``wrapped`` form."""
    return line if len(line) <= limit else wrapped


def find_model(source: str, *, class_name: str | None, table: str | None) -> ModelClass:
    """The class named ``class_name``, or the class whose ``__tablename__`` is ``table``."""
    for node in ast.parse(source).body:
        tablename = _tablename(node) if isinstance(node, ast.ClassDef) else None
        if tablename is None:
            continue
        assert isinstance(node, ast.ClassDef)
        if (node.name == class_name) if class_name else (tablename == table):
            return _describe(node, tablename)
    wanted = f"class {class_name}" if class_name else f'__tablename__ = "{table}"'
    raise ConfigurationError(f"no mapped class with {wanted} found in the models module")


def find_metadata_owner(source: str) -> str | None:
    """The name in a models module whose ``.metadata`` is the models' metadata: its
    declarative base (a `DeclarativeBase` subclass, or ``declarative_base()``'s result),
    else its first mapped class (one imported from elsewhere has the same metadata)."""
    mapped = None
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            if any(ast.unparse(b).split(".")[-1].startswith("DeclarativeBase") for b in node.bases):
                return node.name
            if mapped is None and _tablename(node) is not None:
                mapped = node.name
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func).split(".")[-1] == "declarative_base"
        ):
            return node.targets[0].id
    return mapped


def _tablename(node: ast.ClassDef) -> str | None:
    for statement in node.body:
        if (
            isinstance(statement, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__tablename__" for t in statement.targets)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        ):
            return statement.value.value
    return None


def _describe(node: ast.ClassDef, table: str) -> ModelClass:
    pk_name, pk_type, required = "id", "Any", {}
    for statement in node.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        annotation = ast.unparse(statement.annotation)
        if not annotation.startswith("Mapped[") or not isinstance(statement.value, ast.Call):
            continue
        python_type = annotation.removeprefix("Mapped[").removesuffix("]")
        keywords = {k.arg for k in statement.value.keywords}
        if _keyword_is_true(statement.value, "primary_key"):
            pk_name, pk_type = statement.target.id, python_type
        elif "None" not in python_type and not keywords & {"default", "server_default"}:
            required[statement.target.id] = python_type
    return ModelClass(node.name, table, pk_name, pk_type, required)


def _keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def add_base(source: str, class_name: str, base: str, limit: int) -> str:
    """Put ``base`` first among the bases of ``class_name`` (a no-op if it is there)."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    bases = [ast.unparse(b) for b in node.bases]
    if base in bases:
        return source
    lines = source.splitlines(keepends=True)
    header_end = node.body[0].lineno - 1  # the lines from "class" to the colon
    start = node.lineno - 1
    header = "".join(lines[start:header_end])
    if header.count("\n") != 1:
        raise ConfigurationError(
            f"class {class_name} has a header over several lines; add {base} to its bases"
            " by hand, or pass --service-only"
        )
    names = [base, *bases]
    indent = " " * node.col_offset
    one_line = f"{indent}class {class_name}({', '.join(names)}):\n"
    wrapped = (
        f"{indent}class {class_name}(\n"
        + "".join(f"{indent}    {name},\n" for name in names)
        + f"{indent}):\n"
    )
    lines[start:header_end] = [fit(one_line.rstrip("\n"), wrapped, limit).rstrip("\n") + "\n"]
    return "".join(lines)


def add_import(source: str, module: str, name: str, first_party: str, limit: int) -> str:
    """Add ``from module import name`` where isort (ruff's ``I``) would put it."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    for node in top:
        if isinstance(node, ast.ImportFrom) and node.module == module and not node.level:
            names = sorted({*(a.name for a in node.names), name})
            lines[node.lineno - 1 : node.end_lineno] = [_from_import(module, names, limit)]
            return "".join(lines)
    statement = _from_import(module, [name], limit)
    ours = [n for n in top if not getattr(n, "level", 0) and _top_package(n) == first_party]
    if ours:
        after = [n for n in ours if isinstance(n, ast.ImportFrom) and (n.module or "") > module]
        if after:
            lines.insert(after[0].lineno - 1, statement)
        else:
            lines.insert(ours[-1].end_lineno or ours[-1].lineno, statement)
        return "".join(lines)
    absolute = [n for n in top if not getattr(n, "level", 0)]
    if absolute:
        at = absolute[-1].end_lineno or absolute[-1].lineno
        following = lines[at] if at < len(lines) else "\n"
        block = ["\n", statement] + (["\n"] if following.strip() else [])
        lines[at:at] = block
        return "".join(lines)
    at = _after_docstring(tree)
    lines[at:at] = ["\n", statement, "\n"]
    return "".join(lines)


def _top_package(node: ast.Import | ast.ImportFrom) -> str:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0]
    return node.names[0].name.split(".")[0]


def _after_docstring(tree: ast.Module) -> int:
    first = tree.body[0] if tree.body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first.end_lineno or first.lineno
    return 0


def _from_import(module: str, names: list[str], limit: int) -> str:
    one_line = f"from {module} import {', '.join(names)}"
    wrapped = f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"
    return fit(one_line, wrapped, limit) + "\n"


def is_reserved_name(name: str) -> bool:
    """A standard-library module name: a workflow named so would shadow it in imports."""
    return name in sys.stdlib_module_names
