"""scripts/system-packages.sh: the one list of system packages `make setup` installs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "system-packages.sh"


def _run(tmp_path: Path, purpose: str, *, uid: int, present: bool, chromium: bool = True):
    """Run the script as user ``uid`` (a stand-in ``id``), offline (a stand-in ``python3`` that
    has venv but cannot reach Keras), with or without the Fashion-MNIST folder and Chromium."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "python3").write_text(  # `import venv` works; the download check fails
        f"#!/bin/sh\ncase \"$*\" in *venv*) exec {sys.executable} \"$@\";; esac\nexit 1\n")
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho \"apt-get $*\" >> \"$APT_LOG\"\n")
    if chromium:
        (bin_dir / "chromium").write_text("#!/bin/sh\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    folder = tmp_path / "fashion-mnist"
    if present:
        folder.mkdir(exist_ok=True)
    env = {"PATH": str(bin_dir),  # the stand-ins only: the machine's own packages do not count
           "FASHION_MNIST_DIR": str(folder), "APT_LOG": str(tmp_path / "apt.log"),
           "HOME": str(tmp_path)}
    return subprocess.run([shutil.which("bash"), str(SCRIPT), purpose], env=env,
                          capture_output=True, text=True, timeout=60)


def test_nothing_is_done_when_nothing_is_missing(tmp_path):
    done = _run(tmp_path, "test", uid=1000, present=True)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "apt.log").exists()


def test_root_installs_what_is_missing_with_apt_get(tmp_path):
    done = _run(tmp_path, "study", uid=0, present=False)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "apt.log").read_text()
    assert "update" in log and "install -y -qq --no-install-recommends dataset-fashion-mnist" in log
    assert "installed dataset-fashion-mnist" in done.stdout


def test_another_user_is_told_the_exact_command_and_stopped(tmp_path):
    done = _run(tmp_path, "study", uid=1000, present=False)
    assert done.returncode == 1
    assert ("sudo apt-get install -y --no-install-recommends dataset-fashion-mnist"
            in done.stderr)
    assert not (tmp_path / "apt.log").exists()


def test_make_test_also_needs_chromium(tmp_path):
    done = _run(tmp_path, "test", uid=1000, present=True, chromium=False)
    assert done.returncode == 1 and "install -y --no-install-recommends chromium" in done.stderr
    assert _run(tmp_path, "study", uid=1000, present=True, chromium=False).returncode == 0


def test_an_unknown_purpose_is_refused(tmp_path):
    done = _run(tmp_path, "everything", uid=0, present=True)
    assert done.returncode == 2 and "Received: everything" in done.stderr


def test_ci_only_calls_the_readmes_test_command():
    ci = (SCRIPT.parents[1] / ".ci" / "run").read_text()
    commands = [line for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert commands[-1] == "make test" and "apt-get" not in ci
