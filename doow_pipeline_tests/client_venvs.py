"""Virtual environments for Azure clients that nobody on this project wrote, installed from PyPI on demand.

The Azure CLI pins its own Azure SDK versions (older azure-mgmt-* than ours), so it cannot share the
project's environment: it gets a virtualenv of its own, created once per version and reused by every later
test run (and by parallel pytest workers: creation is serialised with a file lock):

    az = ensure_azure_cli()          # Path to .../azure-cli-2.91.0/bin/az, installed if missing

Location: $DOOW_CLIENT_VENVS, else $XDG_CACHE_HOME/doow-pipeline/client-venvs, else
~/.cache/doow-pipeline/client-venvs. Installation uses uv (the one `make setup` installs; $UV overrides)
from PyPI only (no extra indexes or local wheel folders), falling back to `python -m venv` + pip.

    python -m doow_pipeline_tests.client_venvs          # install ahead of a test run, print the path
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

AZURE_CLI_VERSION = "2.91.0"
PYPI = "https://pypi.org/simple"
INSTALL_TIMEOUT_S = 1800


class ClientInstallError(RuntimeError):
    pass


def venvs_root() -> Path:
    configured = os.environ.get("DOOW_CLIENT_VENVS")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "doow-pipeline" / "client-venvs"


def _uv() -> str | None:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(Path.home() / ".local" / "bin" / "uv")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _clean_env() -> dict:
    """The environment for the installer: PyPI only (no site pip.conf indexes or find-links)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_INDEX", "UV_EXTRA_INDEX", "UV_FIND_LINKS", "VIRTUAL_ENV"))
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_INDEX_URL"] = PYPI
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_INDEX_URL"] = PYPI
    return env


def _run(cmd: list[str], log: Path) -> None:
    with log.open("ab") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        result = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=_clean_env(), timeout=INSTALL_TIMEOUT_S, check=False
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise ClientInstallError(f"{' '.join(cmd[:3])} ... failed (exit {result.returncode}); log {log}:\n{tail}")


def ensure_venv(name: str, requirements: list[str], entry_point: str) -> Path:
    """A virtualenv `name` under venvs_root() holding `requirements`; returns the path of `entry_point` in
    its bin/. Installs once; a half-finished install (no marker) is removed and redone."""
    root = venvs_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / name
    marker = venv / ".doow-installed"
    wanted = "\n".join(requirements) + "\n"
    target = venv / "bin" / entry_point
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        python = venv / "bin" / "python"
        if (
            marker.is_file()
            and marker.read_text() == wanted
            and target.is_file()
            and Path(os.path.realpath(python)).is_file()
        ):  # its base interpreter still exists
            return target
        if venv.exists():
            shutil.rmtree(venv)
        log = root / f"{name}.install.log"
        log.write_bytes(b"")
        uv = _uv()
        if uv:
            _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], log)
            _run(
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    str(venv / "bin" / "python"),
                    "--index-url",
                    PYPI,
                    *requirements,
                ],
                log,
            )
        else:
            _run([sys.executable, "-m", "venv", str(venv)], log)
            _run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--index-url", PYPI, *requirements],
                log,
            )
        if not target.is_file():
            raise ClientInstallError(f"{target} is missing after installing {requirements}; see {log}")
        marker.write_text(wanted)
        return target


def ensure_azure_cli(version: str = AZURE_CLI_VERSION) -> Path:
    """The `az` executable of Azure CLI `version` (pip package azure-cli from PyPI) in its own virtualenv."""
    return ensure_venv(f"azure-cli-{version}", [f"azure-cli=={version}"], "az")


if __name__ == "__main__":
    print(ensure_azure_cli())
