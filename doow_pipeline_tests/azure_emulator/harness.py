"""Start the emulator in a subprocess (the CLI, exactly as users run it) and drive its control API.

    with run_emulator({"seed": 1, "tenants": [...]}) as emu:
        cred = ClientSecretCredential(tenant, client, secret, authority=emu.authority,
                                      disable_instance_discovery=True, connection_verify=emu.ca_cert)
        ...
        emu.requests()          # the request log (secrets redacted)

Leaving the block stops the process and fails (AssertionError) if spec validation recorded violations.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

from .scenario import Scenario, load_scenario, scenario_from_dict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class EmulatorError(RuntimeError):
    pass


class Emulator:
    def __init__(self, endpoints: dict, scenario: Scenario, process: subprocess.Popen, state_dir: Path):
        self.endpoints = endpoints
        self.authority: str = endpoints["authority"]
        self.arm: str = endpoints["arm"]
        self.metrics: str = endpoints["metrics"]
        self.ca_cert: str = endpoints["ca_cert"]
        self.scenario = scenario
        self.process = process
        self.state_dir = state_dir
        self._ssl = ssl.create_default_context(cafile=self.ca_cert)

    # ---- conveniences for SDK clients ----------------------------------------------------------------------
    def metrics_endpoint(self, region: str) -> str:
        return self.metrics.format(region=region)

    @property
    def client_kwargs(self) -> dict:
        return {"connection_verify": self.ca_cert}

    def credential(self, tenant_id: str, client_id: str, client_secret: str, **kwargs):
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            tenant_id,
            client_id,
            client_secret,
            authority=self.authority,
            disable_instance_discovery=True,
            connection_verify=self.ca_cert,
            **kwargs,
        )

    def arm_kwargs(self, **kwargs) -> dict:
        """Keyword arguments for azure-mgmt-* clients pointed at this emulator."""
        return {
            "base_url": self.arm,
            "credential_scopes": ["https://management.azure.com/.default"],
            "connection_verify": self.ca_cert,
            **kwargs,
        }

    def monitor_client(self, credential, subscription_id: str, **kwargs):
        from azure.mgmt.monitor import MonitorManagementClient

        return MonitorManagementClient(credential, subscription_id, **self.arm_kwargs(**kwargs))

    def cognitive_client(self, credential, subscription_id: str, **kwargs):
        from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

        return CognitiveServicesManagementClient(credential, subscription_id, **self.arm_kwargs(**kwargs))

    def metrics_client(self, credential, region: str, **kwargs):
        from azure.monitor.querymetrics import MetricsClient

        return MetricsClient(self.metrics_endpoint(region), credential, connection_verify=self.ca_cert, **kwargs)

    # ---- control API ---------------------------------------------------------------------------------------------
    def control(self, method: str, name: str, payload=None, query: str = ""):
        data = None if payload is None else json.dumps(payload).encode()
        url = f"{self.authority}/_emulator/{name}" + (f"?{query}" if query else "")
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"} if data else {}
        )
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise EmulatorError(f"control {method} {name}: {exc.code} {exc.read().decode(errors='replace')}") from exc

    def health(self) -> dict:
        return self.control("GET", "health")

    def requests(self, kind: str | None = None) -> list[dict]:
        return self.control("GET", "requests", query=f"kind={kind}" if kind else "")

    def clear_requests(self) -> None:
        self.control("DELETE", "requests")

    def add_faults(self, faults) -> list[int]:
        return self.control("POST", "faults", faults if isinstance(faults, list) else [faults])["added"]

    def faults(self) -> list[dict]:
        return self.control("GET", "faults")

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def set_clock(self, now: str | datetime | None) -> str:
        value = now.isoformat() if isinstance(now, datetime) else now
        return self.control("POST", "clock", {"now": value})["now"]

    def advance_clock(self, seconds: float) -> str:
        return self.control("POST", "clock", {"advance_seconds": seconds})["now"]

    def reset(self) -> None:
        self.control("POST", "reset")

    def violations(self) -> list[dict]:
        return self.control("GET", "violations")

    def clear_violations(self) -> None:
        self.control("DELETE", "violations")


def _read_ready_line(process: subprocess.Popen, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not result or not result[0].strip():
        return ""
    return result[0]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stdout:
        process.stdout.close()


@contextlib.contextmanager
def run_emulator(
    scenario: str | Path | dict,
    *,
    state_dir: str | Path | None = None,
    port: int | None = None,
    spec_validation: bool = True,
    check_violations: bool = True,
    startup_timeout: float = 30.0,
    extra_args: list[str] | None = None,
):
    """Runs the emulator CLI in a subprocess for a scenario file or dict; yields an Emulator."""
    state = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="azure-emulator-"))
    state.mkdir(parents=True, exist_ok=True)
    if isinstance(scenario, dict):
        path = state / "scenario.yaml"
        path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
        model = scenario_from_dict(scenario, source=str(path))
    else:
        path = Path(scenario).resolve()
        model = load_scenario(path)
    cmd = [
        sys.executable,
        "-m",
        "doow_pipeline_tests.azure_emulator",
        "--scenario",
        str(path),
        "--state-dir",
        str(state),
    ]
    if port:
        cmd += ["--port", str(port)]
    if not spec_validation:
        cmd.append("--no-spec-validation")
    cmd += list(extra_args or ())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    stderr_path = state / "emulator.stderr.log"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=stderr, cwd=str(PROJECT_ROOT), env=env, text=True
        )
    try:
        line = _read_ready_line(process, startup_timeout)
        if not line:
            _stop(process)
            raise EmulatorError(
                f"emulator did not start (exit {process.poll()}): {stderr_path.read_text(errors='replace')[-4000:]}"
            )
        emulator = Emulator(json.loads(line), model, process, state)
    except BaseException:
        _stop(process)
        raise
    failed = False
    try:
        yield emulator
    except BaseException:
        failed = True
        raise
    finally:
        violations = []
        if check_violations and process.poll() is None:
            try:
                violations = emulator.violations()
            except (EmulatorError, OSError) as exc:
                violations = [{"problems": [f"could not read violations: {exc}"]}]
        _stop(process)
        if violations and not failed:
            lines = [
                f"{v.get('method', '')} {v.get('path', '')} -> {v.get('status')} ({v.get('kind')}): "
                f"{'; '.join(v.get('problems', []))}"
                for v in violations[:20]
            ]
            raise AssertionError("the emulator sent responses that violate the Azure specs:\n" + "\n".join(lines))


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
