"""A per-run test CA (trustme) and a server certificate for 127.0.0.1 and localhost."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import trustme


def make_tls(state_dir: Path, extra_names: tuple[str, ...] = ()) -> tuple[ssl.SSLContext, Path]:
    """Writes ca.pem (and server.pem with the key, mode 0600) to state_dir; returns the server context."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="doow-pipeline Azure emulator")
    names = ("127.0.0.1", "localhost", "*.localhost", "::1") + tuple(extra_names)
    cert = ca.issue_cert(*names)
    ca_path = state_dir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server_path = state_dir / "server.pem"
    fd = os.open(server_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(cert.private_key_pem.bytes())
        for blob in cert.cert_chain_pems:
            fh.write(blob.bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(server_path))
    return context, ca_path.resolve()
