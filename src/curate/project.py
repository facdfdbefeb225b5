"""The user's project as curate's CLI sees it: `[tool.curate]` in `pyproject.toml`.

    [tool.curate]
    package = "myapp"                          # the importable package (src/ or flat layout)
    app = "myapp.services.workflows:WORKFLOWS"  # the app's workflows (this is the default)
    alembic_ini = "alembic.ini"                # the project's Alembic set-up (the default)

`CURATE_APP` (or ``--app``) overrides ``app``. The object it names is a `Workflow`, a
sequence of them, or a function returning one of those.
"""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from curate.errors import ConfigurationError
from curate.workflow import Workflow


@dataclass(frozen=True)
class Project:
    """Where a project's code, migrations and workflows are."""

    root: Path
    package: str
    package_dir: Path
    app: str
    alembic_ini: Path

    @property
    def services_dir(self) -> Path:
        return self.package_dir / "services"

    @property
    def models_module(self) -> str:
        """Where the scaffold looks for the models: ``<package>.models``."""
        return f"{self.package}.models"

    @property
    def registry_path(self) -> Path:
        """The module listing the app's workflows (the default ``app``)."""
        return self.services_dir / "workflows.py"

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The project whose `pyproject.toml` is at ``start`` or above it."""
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / "pyproject.toml").is_file():
                return cls.load(folder)
        raise ConfigurationError(
            f"no pyproject.toml in {here} or above it; run curate inside your project"
            " (a folder with a pyproject.toml that has a [tool.curate] table)"
        )

    @classmethod
    def load(cls, root: Path) -> Project:
        try:
            data = tomllib.loads((root / "pyproject.toml").read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(
                f"{root / 'pyproject.toml'} is not valid TOML: {error}"
            ) from None
        table = data.get("tool", {}).get("curate")
        if not isinstance(table, dict) or not isinstance(table.get("package"), str):
            raise ConfigurationError(
                f'{root / "pyproject.toml"} has no [tool.curate] package = "...";'
                " add it, naming your importable package"
            )
        package = table["package"]
        candidates = [root / "src" / package, root / package]
        package_dir = next((p for p in candidates if (p / "__init__.py").is_file()), None)
        if package_dir is None:
            raise ConfigurationError(
                f"[tool.curate] package = {package!r}, but neither src/{package}/__init__.py"
                f" nor {package}/__init__.py exists in {root}"
            )
        return cls(
            root=root,
            package=package,
            package_dir=package_dir,
            app=str(table.get("app", f"{package}.services.workflows:WORKFLOWS")),
            alembic_ini=root / str(table.get("alembic_ini", "alembic.ini")),
        )

    def with_package(self, package: str) -> Project:
        """The same project with another package (``--package``); it must be inside."""
        for candidate in (self.root / "src" / package, self.root / package):
            resolved = candidate.resolve()
            if not resolved.is_relative_to(self.root):
                raise ConfigurationError(f"package {package!r} is outside the project; refusing")
            if (resolved / "__init__.py").is_file():
                return replace(self, package=package, package_dir=resolved)
        raise ConfigurationError(f"package {package!r} not found in {self.root}")

    def module_path(self, module: str) -> Path:
        """The file of the importable ``module``, which must be inside the project."""
        relative = Path(*module.split("."))
        base = self.package_dir.parent
        for candidate in (base / relative.with_suffix(".py"), base / relative / "__init__.py"):
            resolved = candidate.resolve()
            if not resolved.is_relative_to(self.root):
                raise ConfigurationError(f"module {module} is outside the project; refusing")
            if resolved.is_file():
                return resolved
        raise ConfigurationError(f"module {module} not found under {base}")

    def inside(self, path: Path) -> Path:
        """``path`` resolved, refused if it escapes the project."""
        resolved = (self.root / path).resolve()
        if not resolved.is_relative_to(self.root):
            raise ConfigurationError(f"{path} is outside the project {self.root}; refusing")
        return resolved


def load_workflows(spec: str, search_path: Path | None = None) -> list[Workflow]:
    """The workflows named by ``module:attribute`` (see the module docstring)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"app {spec!r} must look like package.module:attribute")
    if search_path is not None and str(search_path) not in sys.path:
        sys.path.insert(0, str(search_path))
    try:
        target: Any = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(f"cannot load the app {spec!r}: {error}") from None
    if callable(target) and not isinstance(target, Workflow):
        target = target()
    found = [target] if isinstance(target, Workflow) else target
    if not isinstance(found, Sequence) or not all(isinstance(w, Workflow) for w in found):
        raise ConfigurationError(
            f"app {spec!r} is {type(target).__name__}; it must be a Workflow, a list of"
            " them, or a function returning one of those"
        )
    return list(found)
