"""Where the landing zone is: a local folder or `az://<container>/<prefix>` in an Azure storage account.

A plain value, checked without any network call, so connections.yaml names every landing problem with its
fix at load time. The store that reads and writes it is warehouse/landing_store.py.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

ACCOUNT_KEY_ENV = "DOOW_LANDING_ACCOUNT_KEY"
ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
LOOPBACK_HOSTS = ("localhost",)


class LandingLocationError(ValueError):
    """A landing setting that cannot work; the message names the problem and the fix."""


@dataclass(frozen=True)
class LandingLocation:
    """The landing zone: a local folder, or `az://<container>/<prefix>` in a storage account."""

    url: str  # as configured (a path, file:// URL or az:// URL); holds no secret
    local_root: Path | None = None
    container: str | None = None
    prefix: str = ""
    account: str | None = None
    endpoint: str | None = None  # the blob service endpoint; None: https://<account>.blob.core.windows.net

    @property
    def is_blob(self) -> bool:
        return self.container is not None

    def __str__(self) -> str:
        if self.local_root is not None:
            return str(self.local_root)
        return f"az://{self.container}/{self.prefix}".rstrip("/") + f" (storage account {self.account})"

    def describe(self, key: str) -> str:
        """Where one landing file is, as the user finds it (a path, or its az:// URL)."""
        if self.local_root is not None:
            return str(self.local_root / key)
        return "az://" + "/".join(p for p in (self.container, self.prefix, key) if p)

    @classmethod
    def parse(
        cls,
        url: str | os.PathLike[str],
        account: str | None = None,
        endpoint: str | None = None,
        base: Path | None = None,
    ) -> LandingLocation:
        """A landing URL checked for what can be checked without a network call; LandingLocationError when not."""
        text = os.fspath(url).strip()
        if not text:
            raise LandingLocationError("is empty; set a folder, or az://<container>/<prefix> for Azure Blob Storage")
        scheme = urlsplit(text).scheme.lower() if "://" in text else ""
        if scheme in ("", "file"):
            if account or endpoint:
                raise LandingLocationError(
                    f"{text!r} is a local folder, but landing_account/landing_endpoint are set; remove them, or "
                    "set landing to az://<container>/<prefix>"
                )
            path = Path(unquote(urlsplit(text).path)) if scheme == "file" else Path(text).expanduser()
            if scheme == "file" and urlsplit(text).netloc not in ("", "localhost"):
                raise LandingLocationError(f"{text!r}: a file:// URL must name a local path (file:///path/to/landing)")
            if not path.is_absolute():
                path = (base or Path.cwd()) / path
            return cls(url=text, local_root=path)
        if scheme != "az":
            raise LandingLocationError(
                f"{text!r}: unsupported scheme {scheme}://; use a local folder, file:///path or "
                "az://<container>/<prefix> (Azure Blob Storage)"
            )
        parts = urlsplit(text)
        container, prefix = parts.netloc, parts.path.strip("/")
        if "@" in container:
            raise LandingLocationError(
                f"{text!r}: name the container only (az://<container>/<prefix>) and the storage account in "
                "settings.landing_account"
            )
        if parts.query or parts.fragment:
            raise LandingLocationError(
                f"{text!r}: remove the query string; never put a SAS token or key in the URL (credentials come "
                f"from azure-identity, or {ACCOUNT_KEY_ENV} for an emulator)"
            )
        if not CONTAINER_NAME.fullmatch(container):
            raise LandingLocationError(
                f"{text!r}: {container!r} is not a valid container name (3-63 lower-case letters, digits and "
                "single hyphens, starting and ending with a letter or digit)"
            )
        if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
            raise LandingLocationError(f"{text!r}: the prefix must not hold empty, '.' or '..' segments")
        if not account:
            raise LandingLocationError(
                f"{text!r} is on Azure Blob Storage but no storage account is set; add "
                "settings.landing_account: <account name> (the account holding the container)"
            )
        if not ACCOUNT_NAME.fullmatch(account):
            raise LandingLocationError(
                f"landing_account {account!r} is not a storage account name (3-24 lower-case letters and digits); "
                "copy it from the storage account's Overview page"
            )
        return cls(url=text, container=container, prefix=prefix, account=account, endpoint=_endpoint(endpoint))


def _endpoint(endpoint: str | None) -> str | None:
    """An endpoint override: https (sovereign clouds, private endpoints), or http only to this machine
    (Azurite), since a bearer token or a signed request must not cross a network in the clear."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise LandingLocationError(
            f"landing_endpoint {endpoint!r} must be an absolute URL such as "
            "https://<account>.blob.core.usgovcloudapi.net or Azurite's http://127.0.0.1:10000/<account>"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise LandingLocationError(
            f"landing_endpoint {endpoint!r}: http:// is allowed only for an emulator on this machine "
            "(127.0.0.1); use https:// for a storage account"
        )
    return endpoint.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
