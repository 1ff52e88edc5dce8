"""Real servers for the tests, started on 127.0.0.1 with a free port in a temporary folder and stopped at
teardown: PostgreSQL (Debian package), Azurite (npm package in .tools/azurite) and headless Chromium
(Debian package). `scripts/install-test-servers` (run by `make test` and `.ci/run`) installs them; a
missing server fails the test with that command in the message, it never skips.

Session-scoped fixtures (registered in conftest.py):

    postgres_server  -> PostgresServer   (.dsn, .host, .port, .user, .password, .create_database(name))
    azurite_server   -> AzuriteServer    (.connection_string, .blob_endpoint, .account_name, .account_key)
    chromium         -> Chromium         (.binary, .chromedriver, .args, .user_data_dir, .command(...))

Readiness is polled (connect / HTTP request) with a bounded timeout; nothing sleeps blindly.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import http.client
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTALL_COMMAND = "scripts/install-test-servers  (or: make test-servers)"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class ServerMissing(RuntimeError):
    pass


def missing(what: str) -> ServerMissing:
    return ServerMissing(f"{what} is not installed. Install the test servers with: {INSTALL_COMMAND}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready, process: subprocess.Popen, what: str, log: Path, timeout: float = STARTUP_TIMEOUT):
    """Polls ready() until it returns a true value; fails early when the process exits, and after timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready:\n{_tail(log)}")
        result = ready()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready after {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(delay)  # polling interval between readiness probes, not a wait for readiness
        delay = min(delay * 2, 0.25)


def _tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def _fail_if_missing():
    """A server that is not installed fails the test (never a skip), naming the install command."""
    try:
        yield
    except ServerMissing as error:
        pytest.fail(str(error), pytrace=False)


# ---- PostgreSQL ---------------------------------------------------------------------------------------


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    data_dir: Path
    log: Path

    @property
    def dsn(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def env(self, database: str) -> dict[str, str]:
        """The DAGSTER_PG_* variables deploy/dagster.postgres.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": database,
        }

    def connect(self, database: str = "postgres"):
        import psycopg2  # comes with dagster-postgres

        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=database, connect_timeout=5
        )

    def create_database(self, name: str) -> str:
        """Creates an empty database (dropping one of that name first); returns its name."""
        con = self.connect()
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return name


def postgres_bindir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("postgres")
    if found and shutil.which("initdb"):
        return Path(found).parent
    raise missing("The PostgreSQL server (Debian package postgresql)")


def _server_user() -> tuple[int, int] | None:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user the Debian package creates."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise missing("The `postgres` system user (created by the Debian package postgresql)") from None
    return entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def run_postgres(timeout: float = STARTUP_TIMEOUT):
    bindir = postgres_bindir()
    owner = _server_user()
    # A folder of its own under the system temp dir (pytest's basetemp is root-only, unreadable for postgres).
    base = Path(tempfile.mkdtemp(prefix="doow-postgres-"))
    data, log = base / "data", base / "postgres.log"
    user, password = "doow", secrets.token_urlsafe(18)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    as_owner: dict = {}
    if owner:
        as_owner = {"user": owner[0], "group": owner[1], "extra_groups": []}
        os.chown(base, *owner)
        os.chown(pwfile, *owner)
    process = None
    try:
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=base,
            **as_owner,
        )
        pwfile.unlink()
        for attempt in range(3):
            port = free_port()
            with open(log, "ab") as out:
                process = subprocess.Popen(
                    [
                        str(bindir / "postgres"),
                        "-D",
                        str(data),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        f"port={port}",
                        "-c",
                        f"unix_socket_directories={base}",
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "max_connections=200",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=base,
                    **as_owner,
                )
            server = PostgresServer("127.0.0.1", port, user, password, data, log)

            def ready(server=server):
                try:
                    server.connect().close()
                    return True
                except Exception:  # noqa: BLE001 - not accepting connections yet
                    return False

            try:
                wait_until(ready, process, "PostgreSQL", log, timeout)
                break
            except RuntimeError:
                if process.poll() is not None and "could not bind" in _tail(log) and attempt < 2:
                    continue  # the free port was taken in between: another one
                raise
        yield server
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"initdb failed: {error.stderr}") from error
    finally:
        if process is not None:
            stop_process(process, signal.SIGINT)  # "fast shutdown"
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on 127.0.0.1 (one per pytest worker), password auth, stopped at session end."""
    with _fail_if_missing(), run_postgres() as server:
        yield server


# ---- Azurite ------------------------------------------------------------------------------------------

AZURITE_BIN = PROJECT_ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"


@dataclass
class AzuriteServer:
    account_name: str
    account_key: str
    port: int
    location: Path
    log: Path

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};AccountKey={self.account_key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )


@contextlib.contextmanager
def run_azurite(tmp: Path, timeout: float = STARTUP_TIMEOUT):
    if not AZURITE_BIN.exists():
        raise missing(f"Azurite ({AZURITE_BIN.relative_to(PROJECT_ROOT)})")
    node = shutil.which("node")
    if not node:
        raise missing("Node.js (for Azurite)")
    # A generated account (not the well-known devstoreaccount1 key): AZURITE_ACCOUNTS="name:key".
    account, key = "doowtest", base64.b64encode(secrets.token_bytes(64)).decode()
    location, log = tmp / "data", tmp / "azurite.log"
    location.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AZURITE_ACCOUNTS": f"{account}:{key}"}
    process = None
    try:
        for attempt in range(3):
            port = free_port()
            with open(log, "ab") as out:
                process = subprocess.Popen(
                    [
                        node,
                        str(AZURITE_BIN),
                        "--blobHost",
                        "127.0.0.1",
                        "--blobPort",
                        str(port),
                        "--location",
                        str(location),
                        "--skipApiVersionCheck",
                        "--disableProductStyleUrl",
                        "--silent",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=tmp,
                    start_new_session=True,
                )
            server = AzuriteServer(account, key, port, location, log)

            def ready(port=port):
                if not _port_open(port):
                    return False
                try:  # any HTTP answer (an anonymous request gets 4xx) means the blob service is serving
                    con = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    con.request("GET", f"/{account}?comp=list")
                    status = con.getresponse().status
                    con.close()
                    return status > 0
                except OSError:
                    return False

            try:
                wait_until(ready, process, "Azurite", log, timeout)
                break
            except RuntimeError:
                if process.poll() is not None and "EADDRINUSE" in _tail(log) and attempt < 2:
                    continue
                raise
        yield server
    finally:
        if process is not None:
            stop_process(process, signal.SIGTERM)


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    """Azurite's blob service on 127.0.0.1 with a generated account, data in a temp dir."""
    with _fail_if_missing(), run_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


# ---- Chromium -----------------------------------------------------------------------------------------

# Headless as root on a machine with a closed network: no sandbox (root), no GPU, and none of Chromium's
# own background connections (they are refused here and slow every start).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass
class Chromium:
    binary: str
    chromedriver: str | None
    user_data_dir: Path
    args: list[str] = field(default_factory=list)

    def command(self, *extra: str) -> list[str]:
        return [self.binary, *self.args, *extra]


def chromium_binary() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise missing("Chromium (Debian package chromium)")


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """The Chromium binary and the flags to run it headless here, with a new empty --user-data-dir."""
    with _fail_if_missing():
        binary = chromium_binary()
        driver = shutil.which("chromedriver") or (
            "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
        )
        if driver is None:
            raise missing("ChromeDriver (Debian package chromium-driver)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    yield Chromium(binary, driver, profile, [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"])
