"""Smoke tests for the server fixtures: each server is reachable on 127.0.0.1 and does its basic job."""

from __future__ import annotations

import struct
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def test_postgres_server_accepts_password_logins_and_creates_databases(postgres_server):
    name = postgres_server.create_database("smoke")
    con = postgres_server.connect(name)
    try:
        with con.cursor() as cur:
            cur.execute(
                "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2); SELECT sum(x), current_user, "
                "inet_server_addr()::text FROM t"
            )
            assert cur.fetchone() == (3, postgres_server.user, "127.0.0.1/32")
    finally:
        con.close()
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(
            host="127.0.0.1",
            port=postgres_server.port,
            user=postgres_server.user,
            password="wrong",
            dbname=name,
            connect_timeout=5,
        )


def test_azurite_stores_and_lists_blobs(azurite_server):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite_server.connection_string)
    container = service.create_container("smoke")
    container.upload_blob("landing/day=2026-11-19/part-0.txt", b"hello blob")
    container.upload_blob("landing/day=2026-11-20/part-0.txt", b"second")
    assert [b.name for b in container.list_blobs(name_starts_with="landing/")] == [
        "landing/day=2026-11-19/part-0.txt",
        "landing/day=2026-11-20/part-0.txt",
    ]
    assert container.download_blob("landing/day=2026-11-19/part-0.txt").readall() == b"hello blob"
    # The account key is checked: a wrong key is refused.
    wrong = azurite_server.connection_string.replace(azurite_server.account_key, "d3Jvbmc=" * 11)
    with pytest.raises(Exception, match="(?i)authoriz|signature"):
        list(BlobServiceClient.from_connection_string(wrong).get_container_client("smoke").list_blobs())


PAGE = b"""<!doctype html><html><head><title>smoke</title>
<style>html,body{margin:0;background:#0a7d32}</style></head>
<body><p id="out">static</p><script>document.getElementById('out').textContent = 'rendered by ' + 'script';</script>
</body></html>"""


@pytest.fixture
def local_page():
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            body = PAGE if self.path == "/" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    finally:
        server.shutdown()
        server.server_close()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_chromium_renders_a_local_page_and_takes_a_screenshot(chromium, local_page, tmp_path):
    url, seen = local_page
    dom = subprocess.run(chromium.command("--dump-dom", url), capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<p id="out">rendered by script</p>' in dom.stdout  # the page's script ran
    shot = tmp_path / "smoke.png"
    result = subprocess.run(
        chromium.command("--window-size=800,600", f"--screenshot={shot}", url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert png_size(shot.read_bytes()) == (800, 600)
    assert seen.count("/") == 2
    version = subprocess.run([chromium.chromedriver, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and "ChromeDriver" in version.stdout
