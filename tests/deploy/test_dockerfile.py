"""The Dockerfile and .dockerignore: every target runs a module that exists, small and non-root."""

from __future__ import annotations

import re
import shlex

from auction_shared import migrate
from tests.deploy import codebase, manifests

BUILD_TOOLS = re.compile(r"\b(apt-get|apk|gcc|g\+\+|build-essential|make|libpq-dev|python3-dev)\b")


def targets() -> dict[str, manifests.Stage]:
    """Stages that run something: the ones a compose service or a k8s image is built from."""
    return {s.name: s for s in manifests.dockerfile_stages() if s.name and s.cmd}


def test_every_target_runs_a_module_that_exists() -> None:
    found = targets()
    assert found
    for name, stage in found.items():
        cmd = stage.cmd
        assert cmd[:2] == ["python", "-m"] and len(cmd) == 3, f"{name}: {cmd}"
        assert codebase.module_exists(cmd[2]), f"{name}: python -m {cmd[2]} names no module"


def test_every_process_of_the_code_has_its_own_target() -> None:
    found = targets()
    for service in codebase.services():
        assert service.folder in found, f"no Dockerfile target {service.folder}"
        assert found[service.folder].cmd == ["python", "-m", service.module]
        if service.port is not None:
            assert str(service.port) in found[service.folder].all("EXPOSE"), service.folder
    assert found["migrate"].cmd == ["python", "-m", "auction_shared.migrate"]


def test_the_final_image_is_slim_non_root_and_has_no_build_tools() -> None:
    for name in targets():
        chain = manifests.stage_chain(name)
        base = chain[-1]
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base.base), f"{name} is built on {base.base}"
        assert base.name != "builder" and all(s.name != "builder" for s in chain), name
        users = [u for s in reversed(chain) for u in s.all("USER")]
        assert users, f"{name} runs as root"
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) > 0, f"{name}: USER {uid} (numeric, so runAsNonRoot can check it)"
        for s in chain:
            for run in s.all("RUN"):
                assert not BUILD_TOOLS.search(run), f"{name}: installs build tools: {run}"
            for copy in s.all("COPY"):
                if copy.startswith("--from="):
                    assert copy.split() == ["--from=builder", "/opt/venv", "/opt/venv"], copy


def test_the_builder_installs_only_the_pinned_runtime_requirements() -> None:
    builder = manifests.stage("builder")
    installs = [r for r in builder.all("RUN") if "pip install" in r]
    assert len(installs) == 1
    words = shlex.split(installs[0])
    assert "-r" in words and words[words.index("-r") + 1].endswith("/requirements.txt")
    assert "--only-binary=:all:" in words, "wheels only, so no compiler is needed anywhere"
    assert any(c.split()[0] == "requirements.txt" for c in builder.all("COPY"))


def test_the_image_installs_the_packages_the_makefile_installs() -> None:
    makefile = (codebase.ROOT / "Makefile").read_text()
    local = re.search(r"^PACKAGES\s*:=\s*(.+)$", makefile, re.M).group(1).split()
    runtime = manifests.stage("runtime")
    workdir = runtime.all("WORKDIR")[-1]
    installs = [r for r in runtime.all("RUN") if "pip install" in r]
    assert len(installs) == 1
    words = shlex.split(installs[0])
    assert [words[i + 1] for i, w in enumerate(words) if w == "-e"] == [f"{workdir}/{p}" for p in local]
    assert "--no-deps" in words, "every dependency comes from the builder's pinned venv"
    env = manifests.stage_env("runtime")
    assert "PYTHONPATH" not in env, "imports resolve through the installed packages"
    assert env["HOST"] == "0.0.0.0", "inside a container a service must listen beyond loopback"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_the_image_holds_what_the_code_loads_at_run_time() -> None:
    runtime = manifests.stage("runtime")
    workdir = runtime.all("WORKDIR")[-1]
    copies = {}
    for copy in runtime.all("COPY"):
        if copy.startswith("--"):
            continue
        source, target = copy.split()
        copies[source.rstrip("/")] = target.rstrip("/")
        assert (codebase.ROOT / source).exists(), f"COPY {source}: no such path"
        assert not manifests.dockerignored(source.rstrip("/")), f"COPY {source}: .dockerignore leaves it out"
    for local in ("shared", "services"):
        assert copies[local] == local, f"{local} must land at {workdir}/{local} (editable install)"
    # migrate.py finds its SQL relative to itself: <root>/deploy/migrations.
    migrations = migrate.MIGRATIONS_DIR.relative_to(codebase.ROOT).as_posix()
    assert copies[migrations] == migrations
    assert migrate.migration_files(), "no migrations to ship"
    for service in codebase.services():
        for path in service.package.glob("*.py"):
            assert not manifests.dockerignored(path.relative_to(codebase.ROOT).as_posix()), path


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "tests/deploy/test_compose.py",
        "services/auth/tests/test_auth.py",
        "shared/auction_shared/__pycache__/config.cpython-311.pyc",
        "artifacts/report.txt",
        "deploy/k8s/gateway.yaml",
    ):
        assert manifests.dockerignored(path), f"{path} would be sent into the build"
    for path in ("requirements.txt", "shared/auction_shared/config.py", "deploy/migrations/001_users.sql"):
        assert not manifests.dockerignored(path), f"{path} is needed by the build"


def test_make_images_builds_every_target_with_the_tag_the_manifests_use() -> None:
    makefile = (codebase.ROOT / "Makefile").read_text()
    listed = re.search(r"^IMAGE_TARGETS\s*:=\s*(.+)$", makefile, re.M).group(1).split()
    tag = re.search(r"^IMAGE_TAG\s*\?=\s*(\S+)$", makefile, re.M).group(1)
    assert sorted(listed) == sorted(targets())
    kustomization = manifests.k8s_documents(manifests.K8S_DIR / "kustomization.yaml")[0]
    assert {i["name"]: i["newTag"] for i in kustomization["images"]} == {f"auction-{t}": tag for t in listed}


def test_no_syntax_directive_makes_builds_fetch_a_frontend() -> None:
    """`# syntax=...` makes every BuildKit build pull a frontend image: offline or mirrored setups fail."""
    head = manifests.DOCKERFILE.read_text().splitlines()
    assert not any(re.match(r"#\s*syntax\s*=", line, re.IGNORECASE) for line in head)
