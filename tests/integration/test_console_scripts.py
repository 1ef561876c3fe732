"""Every installed console script answers --help and --version with exit 0."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

SCRIPTS = ["git-sync", "redis-ambassador", "metrics-adapter"]


def script_path(name: str) -> str:
    # The venv's bin directory first: the scripts live next to the interpreter running the tests.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"console script {name} is not installed"
    return found


@pytest.mark.parametrize("name", SCRIPTS)
def test_version_names_the_program_and_release(name: str) -> None:
    done = subprocess.run([script_path(name), "--version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert version("podpatterns") in output


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_exits_zero_and_describes_usage(name: str) -> None:
    done = subprocess.run([script_path(name), "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "usage" in (done.stdout + done.stderr).lower()
