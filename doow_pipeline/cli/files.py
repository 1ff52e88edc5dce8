"""Atomic edits of connections.yaml and `.env` for `doow-azure connect` and `disconnect`.

Every rewrite goes to a temporary file in the same directory, is fsynced and renamed over the original
(`os.replace`), so a crash leaves either the old file or the new one. connections.yaml is edited in place
where possible (comments, key order and the other connections stay as they were): the new text is
parsed back and compared with the intended document, and only when a textual edit cannot be proven
right is the file re-dumped. `.env` keeps every other entry verbatim and always ends up with mode 0600.

The callers build all new contents first and write only after verification succeeded: on any failure
before `apply`, nothing on disk changed. Every read-modify-write happens under `edit_lock` (an flock on a
lock file beside connections.yaml), and `connect` re-reads both files under it after verifying against
Azure, so concurrent connects and disconnects never undo each other's edits.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from dotenv.parser import Binding, parse_stream

from ..config import Connection
from ..core.problems import ConnectionFileError

ENV_FILE_MODE = 0o600


# ---- atomic writes ------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Writes `data` to `path` through a temporary file + fsync + os.replace. `mode` defaults to the existing
    file's mode, or 0666 minus the umask for a new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def lock_path(config_file: Path) -> Path:
    return Path(config_file).parent / f".{Path(config_file).name}.lock"


def stray_temporaries(directory: Path, names: tuple[str, ...]) -> list[Path]:
    """Temporary files `atomic_write` leaves when killed between writing and renaming (`..env.XXXX.tmp`):
    they hold a full copy of the file, secrets included."""
    if not directory.is_dir():
        return []
    return sorted(p for name in names for p in directory.glob(f".{name}.*.tmp") if p.is_file())


@contextmanager
def edit_lock(config_file: Path) -> Iterator[None]:
    """Holds the project's edit lock (exclusive flock; waits for another connect or disconnect to finish).
    Under it, stray temporary files of connections.yaml and .env from a crashed edit are removed first."""
    config_file = Path(config_file)
    config_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(config_file), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for stray in stray_temporaries(config_file.parent, (config_file.name, ".env")):
            stray.unlink(missing_ok=True)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_bytes(path: Path) -> bytes | None:
    path = Path(path)
    return path.read_bytes() if path.exists() else None


@dataclass
class PlannedWrite:
    """The new content of one file, with its old content for rollback (None: the file did not exist)."""

    path: Path
    new: bytes
    old: bytes | None
    mode: int | None = None

    @property
    def changes(self) -> bool:
        return self.new != self.old


def apply(writes: list[PlannedWrite]) -> None:
    """Writes the files in order; if one fails, the ones already written are restored (or removed)."""
    done: list[PlannedWrite] = []
    try:
        for write in writes:
            if write.changes:
                atomic_write(write.path, write.new, write.mode)
                done.append(write)
    except BaseException:
        for write in reversed(done):
            try:
                if write.old is None:
                    write.path.unlink(missing_ok=True)
                else:
                    atomic_write(write.path, write.old, write.mode)
            except OSError:
                pass
        raise


# ---- .env -----------------------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    """A single-quoted dotenv value: literal except for backslash escapes of backslash and quote."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _bindings(text: str) -> list[Binding]:
    return list(parse_stream(io.StringIO(text)))


def env_with_secret(text: str | None, name: str, secret: str) -> str:
    """`.env` text with `name` set to `secret` (replacing its entry in place, else appended); every other
    entry, comment and blank line kept verbatim."""
    if not secret or "\n" in secret or "\r" in secret or "\x00" in secret:
        raise ConnectionFileError("the client secret is empty or contains a line break; paste the secret's Value")
    line = f"{name}={_quote(secret)}\n"
    text = text or ""
    parts, replaced = [], False
    for binding in _bindings(text):
        if binding.key == name and not binding.error:
            if not replaced:
                parts.append(line)
                replaced = True
            continue
        parts.append(binding.original.string)
    new = "".join(parts)
    if not replaced:
        if new and not new.endswith(("\n", "\r")):
            new += "\n"
        new += line
    parsed = dotenv_values(stream=io.StringIO(new))
    if parsed.get(name) != secret:
        raise ConnectionFileError(
            f"the client secret cannot be stored in .env unchanged (it would be read back "
            f"differently by dotenv); {name} was not written"
        )
    return new


def env_without(text: str | None, name: str) -> str:
    """`.env` text with every entry of `name` removed, the rest kept verbatim."""
    return "".join(b.original.string for b in _bindings(text or "") if b.error or b.key != name)


# ---- connections.yaml ---------------------------------------------------------------------------------------------


def _yaml_scalar(value: object) -> str:
    if isinstance(value, str):
        dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        return dumped.removesuffix("\n...").removesuffix("...").strip()
    return json.dumps(value) if not isinstance(value, date) else value.isoformat()


def _block(mapping: dict[str, Any], indent: int) -> str:
    """`mapping` as a YAML block mapping, each key on its own line at `indent` spaces."""
    pad = " " * indent
    lines = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(_block(value, indent + 2).rstrip("\n"))
        else:
            lines.append(f"{pad}{key}: {_yaml_scalar(value)}")
    return "\n".join(lines) + "\n"


def _list_item(mapping: dict[str, Any], indent: int) -> str:
    """`mapping` as one block-sequence item whose dash is at `indent`."""
    body = _block(mapping, indent + 2)
    return " " * indent + "- " + body[indent + 2 :]


def _load(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ConnectionFileError(f"not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConnectionFileError("the top level must be a mapping with 'connections' and 'settings'")
    return data


def _root(text: str) -> yaml.MappingNode | None:
    node = yaml.compose(text) if text.strip() else None
    return node if isinstance(node, yaml.MappingNode) else None


def _key(root: yaml.MappingNode | None, name: str) -> tuple[yaml.Node | None, yaml.Node | None]:
    if root is None:
        return None, None
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == name:
            return key, value
    return None, None


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    """Index just after the newline ending the line that contains `index - 1` (the node's last char)."""
    newline = text.find("\n", max(index - 1, 0))
    return len(text) if newline < 0 else newline + 1


def _node_end(node: yaml.Node) -> int:
    """End index of a node's own content (the last scalar), not of the whitespace/comments after it."""
    end: int = node.end_mark.index
    if isinstance(node, yaml.ScalarNode):
        return end
    if isinstance(node, yaml.MappingNode):
        ends = [_node_end(v) for pair in node.value for v in pair]
        return max(ends) if ends else end
    if isinstance(node, yaml.SequenceNode):
        ends = [_node_end(v) for v in node.value]
        return max(ends) if ends else end
    return end


def _dash_index(text: str, item: yaml.Node) -> int:
    """Index of the '-' introducing a block-sequence item."""
    index: int = item.start_mark.index - 1
    while index >= 0 and text[index] in " \t\r\n":
        index -= 1
    return index


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def _verified(candidate: str, expected: dict[str, Any]) -> str:
    """The in-place edit when it parses back to exactly `expected`, else a clean re-dump."""
    try:
        if _load(candidate) == expected:
            return candidate
    except ConnectionFileError:
        pass
    return _dump(expected)


def _connection_dict(connection: Connection) -> dict[str, str]:
    return {
        "name": connection.name,
        "tenant_id": connection.tenant_id,
        "client_id": connection.client_id,
        "client_secret_env": connection.client_secret_env,
        "scope": connection.scope,
        "cloud": connection.cloud,
    }


NEW_FILE_HEADER = (
    "# doow-pipeline connections (written by `doow-azure connect`). No secrets here: each connection\n"
    "# names the environment variable holding its client secret, kept in .env (mode 0600).\n"
)


def yaml_with_connection(
    text: str | None,
    connection: Connection,
    new_settings: dict[str, Any] | None = None,
    endpoints: dict[str, Any] | None = None,
) -> str:
    """connections.yaml text with `connection` appended. A new file gets `new_settings` as its settings
    block; `endpoints` is written to settings.endpoints only when the file has none yet."""
    entry = _connection_dict(connection)
    if not text or not text.strip():
        settings = dict(new_settings or {})
        if endpoints and "endpoints" not in settings:
            settings["endpoints"] = endpoints
        document = {"connections": [entry], "settings": settings}
        body = "connections:\n" + _list_item(entry, 2) + ("settings:\n" + _block(settings, 2) if settings else "")
        return _verified(NEW_FILE_HEADER + body, document)

    data = _load(text)
    connections = data.get("connections") or []
    if not isinstance(connections, list):
        raise ConnectionFileError("'connections' must be a list")
    if any(isinstance(c, dict) and c.get("name") == connection.name for c in connections):
        raise ConnectionFileError(f"a connection named {connection.name!r} already exists")
    expected = dict(data)
    expected["connections"] = [*connections, entry]
    current = data.get("settings")
    add_endpoints = bool(endpoints) and not (isinstance(current, dict) and current.get("endpoints"))
    if add_endpoints:
        expected["settings"] = {**(current if isinstance(current, dict) else {}), "endpoints": endpoints}

    new = text if text.endswith("\n") else text + "\n"
    edits: list[tuple[int, int, str, int]] = []  # (start, end, replacement, 0 connections | 1 settings)
    root = _root(new)
    key_node, seq = _key(root, "connections")
    if isinstance(seq, yaml.SequenceNode) and not seq.flow_style and seq.value:
        first_dash = _dash_index(new, seq.value[0])
        indent = first_dash - _line_start(new, first_dash)
        end = _line_end(new, _node_end(seq.value[-1]))
        edits.append((end, end, _list_item(entry, indent), 0))
    elif key_node is not None and isinstance(seq, yaml.SequenceNode) and not seq.value:
        edits.append(
            (key_node.start_mark.index, _line_end(new, _node_end(seq)), "connections:\n" + _list_item(entry, 2), 0)
        )
    elif key_node is not None and isinstance(seq, yaml.ScalarNode) and seq.value in ("", "~", "null", "Null", "NULL"):
        edits.append(
            (
                key_node.start_mark.index,
                _line_end(new, key_node.end_mark.index + 1),
                "connections:\n" + _list_item(entry, 2),
                0,
            )
        )
    elif key_node is None:
        edits.append((0, 0, "connections:\n" + _list_item(entry, 2), 0))
    else:
        return _dump(expected)  # flow-style list: no faithful in-place edit
    settings_key, settings_node = _key(root, "settings")
    if add_endpoints and endpoints:  # add_endpoints implies endpoints
        block = "endpoints:\n" + _block(endpoints, 2)
        if isinstance(settings_node, yaml.MappingNode) and not settings_node.flow_style and settings_node.value:
            first_key = settings_node.value[0][0]
            indent = first_key.start_mark.column
            end = _line_end(new, _node_end(settings_node))
            edits.append((end, end, "".join(" " * indent + line + "\n" for line in block.splitlines()), 1))
        elif settings_key is None:
            edits.append(
                (len(new), len(new), "settings:\n" + "".join("  " + line + "\n" for line in block.splitlines()), 1)
            )
        else:
            return _dump(expected)
    # Applied from the end backwards; at one position the settings edit goes first, so it ends up after the
    # new connection item.
    for start, end, replacement, _ in sorted(edits, key=lambda e: (e[0], e[3]), reverse=True):
        new = new[:start] + replacement + new[end:]
    return _verified(new, expected)


def yaml_without_connection(text: str, name: str) -> str:
    """connections.yaml text without the connection `name`; everything else as it was."""
    data = _load(text)
    connections = data.get("connections") or []
    if not any(isinstance(c, dict) and c.get("name") == name for c in connections):
        raise ConnectionFileError(f"no connection named {name!r}")
    expected = dict(data)
    expected["connections"] = [c for c in connections if not (isinstance(c, dict) and c.get("name") == name)]
    new = text if text.endswith("\n") else text + "\n"
    root = _root(new)
    key_node, seq = _key(root, "connections")
    if not isinstance(seq, yaml.SequenceNode) or seq.flow_style:
        return _dump(expected)
    index = next(
        i for i, item in enumerate(seq.value) if isinstance(item, yaml.MappingNode) and _mapping_name(item) == name
    )
    if len(seq.value) == 1:
        assert key_node is not None  # found with seq
        start = key_node.start_mark.index
        end = _line_end(new, _node_end(seq))
        candidate = new[:start] + "connections: []\n" + new[end:]
    else:
        start = _line_start(new, _dash_index(new, seq.value[index]))
        if index + 1 < len(seq.value):
            end = _line_start(new, _dash_index(new, seq.value[index + 1]))
        else:
            end = _line_end(new, _node_end(seq.value[index]))
        candidate = new[:start] + new[end:]
    return _verified(candidate, expected)


def _mapping_name(node: yaml.MappingNode) -> str | None:
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "name" and isinstance(value, yaml.ScalarNode):
            name: str = value.value
            return name
    return None
