"""What the code itself says a deployment must provide: its processes, ports, GET routes, settings.

Read from the source on every run (never a hand-kept list), so a new service, route or environment
variable shows up in the deployment tests the day it is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

from auction_shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
CONFIG = SHARED / "auction_shared" / "config.py"

_ENV_READS = [
    re.compile(r"""\bsetting\(\s*["']([A-Z][A-Z0-9_]*)["']"""),  # a field of a settings class
    re.compile(r"""\.get\(\s*["']([A-Z][A-Z0-9_]*)["']"""),  # env.get("X"), os.environ.get("X")
    re.compile(r"""_(?:int|list)\(\s*env\s*,\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""getenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
]
_ENV_REQUIRED = re.compile(r"""environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]""")
_PORT_FIELD = re.compile(r"lambda\s+\w+\s*:\s*\w+\.(\w+_port)\b")
_GET_ROUTE = re.compile(
    r"""add_get\(\s*(?:\w+\s*\+\s*)?["'](/[^"']*)["']"""  # router.add_get("/path", …)
    r"""|\(\s*["']GET["']\s*,\s*["'](/[^"']*)["']"""  # a route table's ("GET", "/path", …)
)
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class Service:
    """One process of the code: services/<folder>/<module>/__main__.py."""

    folder: str  # the deployment name: compose service, Dockerfile target, k8s Deployment
    module: str  # what `python -m` runs
    package: Path

    @property
    def port(self) -> int | None:
        """The HTTP port its `serve(...)` call takes from Settings, or None (the worker)."""
        match = _PORT_FIELD.search((self.package / "__main__.py").read_text())
        return getattr(Settings(), match.group(1)) if match else None

    @property
    def get_routes(self) -> set[str]:
        """Every path the service's own code registers with add_get."""
        return {a or b for path in self.package.glob("*.py") for a, b in _GET_ROUTE.findall(path.read_text())}


def services() -> list[Service]:
    found = []
    for main in sorted(ROOT.glob("services/*/*/__main__.py")):
        package = main.parent
        found.append(Service(folder=package.parent.name, module=package.name, package=package))
    return found


def source_files() -> list[Path]:
    """Runtime code only: the shared package and every service package, no tests."""
    files = list((SHARED / "auction_shared").glob("*.py"))
    for service in services():
        files.extend(service.package.glob("*.py"))
    return files


@dataclass(frozen=True)
class EnvVar:
    name: str
    files: tuple[str, ...]
    required: bool

    @property
    def setting(self) -> str | None:
        """The Settings field it fills, when config.py reads it."""
        names = {f.name for f in fields(Settings)}
        return self.name.lower() if self.name.lower() in names else None

    @property
    def code_default(self) -> object:
        return getattr(Settings(), self.setting) if self.setting else None

    @property
    def defaults_to_loopback(self) -> bool:
        """Its default only works outside a container (127.0.0.1): a deployment must set it."""
        default = self.code_default
        return isinstance(default, str) and any(host in default for host in LOOPBACK)


def env_vars() -> dict[str, EnvVar]:
    """Every environment variable the runtime code reads, and whether it has a usable default.

    Required: read as os.environ["X"], or a Settings field with a `require_<field>` check
    (JWT_SECRET: its default is empty and the services refuse to start without one).
    """
    seen: dict[str, set[str]] = {}
    required: set[str] = set()
    for path in source_files():
        text = path.read_text()
        rel = str(path.relative_to(ROOT))
        for pattern in _ENV_READS:
            for name in pattern.findall(text):
                seen.setdefault(name, set()).add(rel)
        for name in _ENV_REQUIRED.findall(text):
            seen.setdefault(name, set()).add(rel)
            required.add(name)
    result = {}
    for name, files in seen.items():
        var = EnvVar(name, tuple(sorted(files)), name in required)
        if var.setting and hasattr(Settings, f"require_{var.setting}"):
            var = EnvVar(name, var.files, True)
        result[name] = var
    return result


def check_required(name: str, value: str) -> None:
    """Raise ConfigError if `value` would not pass the code's own check of that setting."""
    var = env_vars()[name]
    assert var.setting, f"{name} is not a Settings field"
    getattr(Settings.from_env({name: value}), f"require_{var.setting}")()


def module_exists(dotted: str) -> bool:
    """`python -m dotted` resolves in one of the installed packages (shared and every service folder)."""
    roots = [SHARED, *(s.package.parent for s in services())]
    parts = dotted.split(".")
    for root in roots:
        base = root.joinpath(*parts)
        if (base / "__main__.py").is_file() or base.with_suffix(".py").is_file():
            return True
    return False
