"""`.ci/test-tools` (run by `make test` and `.ci/run`) on a PATH where hey, Chromium and promtool are absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT

SCRIPT = ROOT / ".ci" / "test-tools"
TOOLS = {"hey": "hey", "chromium": "chromium", "chromedriver": "chromium-driver", "promtool": "prometheus"}
# A stand-in for apt-get: logs its arguments; `install` puts a stub of each package's tool on PATH.
FAKE_APT = """#!/bin/sh
echo "$*" >> "{log}"
[ "$1" = install ] || exit 0
for pkg in "$@"; do
  case "$pkg" in
    hey) t=hey ;; chromium) t=chromium ;; chromium-driver) t=chromedriver ;; prometheus) t=promtool ;;
    *) continue ;;
  esac
  printf '#!/bin/sh\\n' > "{bin}/$t"; chmod +x "{bin}/$t"
done
"""


@pytest.fixture
def bare_path() -> Iterator[Path]:
    """A bin directory with every command of this machine except the four tools (world-readable,
    so the script can run in it as an unprivileged user too)."""
    bin_dir = Path(tempfile.mkdtemp(prefix="bare-path-"))
    bin_dir.chmod(0o755)
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for entry in Path(directory).iterdir():
            target = bin_dir / entry.name
            if entry.name not in TOOLS and not target.exists():
                target.symlink_to(entry)
    try:
        yield bin_dir
    finally:
        shutil.rmtree(bin_dir)


def run(bin_dir: Path, *, as_user: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(SCRIPT)]
    if as_user is not None and os.geteuid() == 0:
        command = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", as_user, "--", *command]
    return subprocess.run(
        command, env={"PATH": str(bin_dir), **env}, capture_output=True, text=True, timeout=60, check=False
    )


def test_without_root_it_stops_at_once_naming_the_exact_command(bare_path: Path) -> None:
    for tool in TOOLS:
        assert shutil.which(tool, path=str(bare_path)) is None
    result = run(bare_path, as_user="nobody")
    assert result.returncode == 1
    assert (
        "sudo sh -c 'apt-get update && apt-get install -y hey chromium chromium-driver prometheus'"
        in result.stderr
    )


def test_as_root_it_installs_exactly_what_is_missing_and_then_nothing(
    bare_path: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test installs (a stand-in) as root, as CI runs it")
    log = tmp_path / "apt.log"
    fake = tmp_path / "apt-get"
    fake.write_text(FAKE_APT.format(log=log, bin=bare_path))
    fake.chmod(0o755)
    (bare_path / "promtool").symlink_to("/bin/true")  # one already there: not installed again
    first = run(bare_path, APT_GET=str(fake))
    assert first.returncode == 0, first.stderr
    assert log.read_text().splitlines() == ["update -qq", "install -y -qq hey chromium chromium-driver"]
    second = run(bare_path, APT_GET=str(fake))
    assert second.returncode == 0 and log.read_text().count("install") == 1


def test_an_install_that_leaves_a_tool_missing_fails(bare_path: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test installs (a stand-in) as root, as CI runs it")
    fake = tmp_path / "apt-get"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    result = run(bare_path, APT_GET=str(fake))
    assert result.returncode == 1
    assert "still not on PATH" in result.stderr
