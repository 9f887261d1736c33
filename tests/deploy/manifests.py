"""Reads the deployment files as their tools would: compose with interpolation, k8s documents, the
Dockerfile's stages, .dockerignore's patterns."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.codebase import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S_DIR = ROOT / "deploy" / "k8s"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; $$ is a literal $.
_INTERPOLATION = re.compile(
    r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)


def interpolation_uses(text: str) -> list[tuple[str, str | None, str | None]]:
    """(name, operator, default) of every variable a compose file interpolates."""
    return [
        (m.group(1) or m.group(4), m.group(2), m.group(3))
        for m in _INTERPOLATION.finditer(text)
        if m.group(0) != "$$"
    ]


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string in a loaded file (what `docker compose config` does)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        current = env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if op in (":?", "?") and not current:
            raise KeyError(f"compose refuses to start without {name}: {arg}")
        return current or ""

    return _INTERPOLATION.sub(one, value)


def compose_raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file as `docker compose up` sees it with the given .env (default: the one
    `make env` writes)."""
    return interpolate(compose_raw(), made_env() if env is None else env)


def parse_env(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def made_env() -> dict[str, str]:
    """A .env as `make env` writes it (deploy/make_env.py), new random secrets each call."""
    return parse_env(make_env_module().filled(ENV_EXAMPLE.read_text()))


def make_env_module() -> Any:
    spec = importlib.util.spec_from_file_location("make_env", ROOT / "deploy" / "make_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def env_example() -> dict[str, str]:
    return parse_env(ENV_EXAMPLE.read_text())


def k8s_files() -> list[Path]:
    return sorted(K8S_DIR.glob("*.yaml"))


def k8s_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_all() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in k8s_files() for doc in k8s_documents(path)]


def k8s_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_all() if doc.get("kind") == kind}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]

    @property
    def cmd(self) -> list[str] | None:
        cmds = self.all("CMD")
        return json.loads(cmds[-1]) if cmds else None


def dockerfile_args() -> dict[str, str]:
    """Global ARGs (before the first FROM) with their defaults."""
    args = {}
    for kw, arg in _instructions(DOCKERFILE.read_text()):
        if kw == "FROM":
            break
        if kw == "ARG" and "=" in arg:
            name, _, value = arg.partition("=")
            args[name] = value
    return args


def dockerfile_stages() -> list[Stage]:
    stages: list[Stage] = []
    args = dockerfile_args()
    for kw, arg in _instructions(DOCKERFILE.read_text()):
        if kw == "FROM":
            words = arg.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif stages:
            stages[-1].instructions.append((kw, arg))
    return stages


def stage(name: str) -> Stage:
    return next(s for s in dockerfile_stages() if s.name == name)


def stage_chain(name: str) -> list[Stage]:
    """The stage and every stage it is built FROM, nearest first."""
    by_name = {s.name: s for s in dockerfile_stages()}
    chain = [by_name[name]]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    return chain


def stage_env(name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for s in reversed(stage_chain(name)):
        for arg in s.all("ENV"):
            for word in shlex.split(arg):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def _instructions(text: str) -> list[tuple[str, str]]:
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    result = []
    for instruction in logical:
        keyword, _, arg = instruction.partition(" ")
        result.append((keyword.upper(), " ".join(arg.split())))
    return result


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def dockerignored(rel_path: str) -> bool:
    """Whether the build context leaves this path (or a folder above it) out; `!` re-includes."""
    parts = Path(rel_path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = _glob_regex(pattern)
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negate
    return ignored


def _glob_regex(pattern: str) -> str:
    """Docker's pattern language: `*` and `?` stay inside one folder, `**/` spans any number."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)
