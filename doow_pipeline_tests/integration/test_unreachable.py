"""Unreachable endpoints are their own problem (issue 8): connection refused, DNS failure, timeouts, proxy
errors and TLS verification failures (wrong CA, host name mismatch, missing CA file) are reported as
`unreachable`, naming the endpoint and the fix, by `connect`, `doctor` and the sync with its checks; never as
refused credentials, never as "HTTP None". Everything stays on loopback: closed ports, a local TLS server
whose certificate covers another name, a local server that never answers, a `.invalid` host name."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import trustme

from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.cli_support import MAIN, NOW, PROD, CliProject, restore_environ
from doow_pipeline_tests.project import ConnectionSpec, write_project

pytestmark = pytest.mark.slow

SCENARIO = load_scenario(DEMO_SCENARIO)
DAY = NOW.date() - timedelta(days=1)
NEVER_SAID = ("credential was refused", "refused the access token", "HTTP None", "no code)", "Traceback")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackServer:
    """A TCP server on 127.0.0.1 that either speaks TLS with a certificate for another host name, or accepts
    connections and never answers (a hung endpoint)."""

    def __init__(self, context: ssl.SSLContext | None):
        self.context = context
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.context is None:
                self.held.append(conn)  # never answered
                continue
            try:
                self.context.wrap_socket(conn, server_side=True).recv(1)
            except (OSError, ssl.SSLError):
                pass
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def variants(emulator, tmp_path_factory) -> Iterator[dict[str, tuple[dict, dict[str, str], str, str]]]:
    """name -> (endpoints, extra environment, the endpoint the message must name, words of its cause)."""
    tmp = tmp_path_factory.mktemp("unreachable")
    other_ca = trustme.CA()  # the CA of "another emulator run"
    other_ca.cert_pem.write_to_path(str(tmp / "other-ca.pem"))
    mismatch_ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    mismatch_ca.issue_cert("not-this-host.example").configure_cert(context)
    mismatch_ca.cert_pem.write_to_path(str(tmp / "mismatch-ca.pem"))
    tls, hung = LoopbackServer(context), LoopbackServer(None)
    real = emulator.endpoints

    def at(base: str, ca: str | None = real["ca_cert"]) -> dict:
        return {"authority": base, "arm": base, "metrics": base + "/{region}", "ca_cert": ca}

    closed = f"https://127.0.0.1:{closed_port()}"
    yield {
        "connection_refused": (at(closed), {}, closed, "refused the connection"),
        "dns_failure": (
            at("https://doow-nowhere.localhost.invalid:8443"),
            {},
            "https://doow-nowhere.localhost.invalid:8443",
            "could not be resolved (DNS)",
        ),
        "timeout": (
            at(f"https://127.0.0.1:{hung.port}"),
            {},
            f"https://127.0.0.1:{hung.port}",
            "did not answer in time",
        ),
        "proxy_error": (
            dict(real),
            {"HTTPS_PROXY": f"http://127.0.0.1:{closed_port()}", "NO_PROXY": ""},
            real["authority"],
            "the proxy refused",
        ),
        "wrong_ca": (
            {**real, "ca_cert": str(tmp / "other-ca.pem")},
            {},
            real["authority"],
            "could not be verified with the configured CA bundle",
        ),
        "host_name_mismatch": (
            at(f"https://127.0.0.1:{tls.port}", str(tmp / "mismatch-ca.pem")),
            {},
            f"https://127.0.0.1:{tls.port}",
            "does not cover the host name",
        ),
        # settings.endpoints.ca_cert naming a missing file is refused before any call (the test at the end);
        # the CA bundle of the environment is found missing only when it is used.
        "missing_ca_file": (
            {**real, "ca_cert": None},
            {"REQUESTS_CA_BUNDLE": str(tmp / "gone" / "ca.pem")},
            real["authority"],
            "CA bundle file configured for it does not exist",
        ),
    }
    tls.close()
    hung.close()


@pytest.fixture
def environment(monkeypatch):
    snapshot = dict(__import__("os").environ)
    monkeypatch.setenv("DOOW_HTTP_TIMEOUT_SECONDS", "2")  # the hung server is noticed in seconds
    yield monkeypatch
    restore_environ(snapshot)


def assert_unreachable(text: str, endpoint: str, cause: str) -> None:
    assert f"could not be reached at {endpoint}" in text, text
    assert cause in text, text
    for words in NEVER_SAID:
        assert words not in text, text


VARIANTS = [
    "connection_refused",
    "dns_failure",
    "timeout",
    "proxy_error",
    "wrong_ca",
    "host_name_mismatch",
    "missing_ca_file",
]


@pytest.mark.parametrize("name", VARIANTS)
def test_connect_reports_the_unreachable_endpoint(name, variants, environment, tmp_path):
    endpoints, env, endpoint, cause = variants[name]
    for key, value in env.items():
        environment.setenv(key, value)
    project = CliProject(tmp_path / "project")
    result = project.connect("prod", MAIN, PROD, endpoints=endpoints, expect=1)
    text = result.stdout + result.stderr
    assert_unreachable(text, endpoint, cause)
    assert "Fix:" in text
    assert not project.config.exists()


def broken_project(tmp_path: Path, endpoints: dict) -> CliProject:
    write_project(tmp_path / "project", endpoints, SCENARIO, [ConnectionSpec("prod", MAIN, PROD)])
    return CliProject(tmp_path / "project")


@pytest.mark.parametrize("name", VARIANTS)
def test_doctor_reports_the_unreachable_endpoint(name, variants, environment, tmp_path):
    endpoints, env, endpoint, cause = variants[name]
    for key, value in env.items():
        environment.setenv(key, value)
    project = broken_project(tmp_path, endpoints)
    result = project.run("doctor", "prod", "--json")
    report = json.loads(result.stdout)
    (finding,) = report["findings"]
    assert finding["code"] == "credentials_unreachable"
    assert_unreachable(json.dumps(report), endpoint, cause)
    assert result.exit_code != 0


@pytest.mark.parametrize("name", VARIANTS)
def test_sync_and_its_checks_report_the_unreachable_endpoint(name, variants, environment, tmp_path):
    endpoints, env, endpoint, cause = variants[name]
    for key, value in env.items():
        environment.setenv(key, value)
    project = broken_project(tmp_path, endpoints)
    result = project.run("sync", "--from", str(DAY), "--to", str(DAY))
    assert result.exit_code != 0
    assert_unreachable(result.stdout + result.stderr, endpoint, cause)
    warehouse = project.workdir / "doow.duckdb"
    events = (
        duckdb_rows(warehouse, "SELECT level, code, message FROM azure_openai.sync_events")
        if warehouse.exists()
        else []
    )
    assert events and all(code == "unreachable" for _, code, _ in events), events


def duckdb_rows(path: Path, sql: str) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_configured_ca_file_that_is_missing_is_named_before_any_call(emulator, environment, tmp_path):
    endpoints = {**emulator.endpoints, "ca_cert": str(tmp_path / "gone" / "ca.pem")}
    connect = CliProject(tmp_path / "connect").connect("prod", MAIN, PROD, endpoints=endpoints)
    project = broken_project(tmp_path, endpoints)
    doctor = project.run("doctor", "prod")
    sync = project.run("sync", "--from", str(DAY), "--to", str(DAY))
    for result in (connect, doctor, sync):
        text = result.stdout + result.stderr
        assert result.exit_code != 0
        assert f"ca_cert {tmp_path / 'gone' / 'ca.pem'}" in text or f"file {tmp_path / 'gone' / 'ca.pem'}" in text
        assert "does not exist" in text and "ready line" in text
        for words in NEVER_SAID:
            assert words not in text, text
