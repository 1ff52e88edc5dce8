"""An analyst's session in another process: a read-only DuckDB connection kept open while the test runs syncs.

DuckDB's file lock is per process, so only a reader in a separate process shows whether it blocks the writer
(a second connection inside the test process would share the lock). The reader obeys one JSON command per
line on stdin and answers one JSON line on stdout:
  {"query": SQL}   -> {"rows": [...]}        on the connection it holds
  {"reconnect": 1} -> {"ok": true}            closes it and opens the same path again (read-only)
  {"files": 1}     -> {"files": [...]}        the paths this process has open (/proc/self/fd)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

READER = r"""
import json, os, sys
import duckdb

path = sys.argv[1]
con = duckdb.connect(path, read_only=True)
print(json.dumps({"ok": True}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    try:
        if "query" in command:
            answer = {"rows": [list(r) for r in con.execute(command["query"]).fetchall()]}
        elif "reconnect" in command:
            con.close()
            con = duckdb.connect(path, read_only=True)
            answer = {"ok": True}
        elif "files" in command:
            names = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    names.append(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    pass
            answer = {"files": names}
        else:
            answer = {"error": "unknown command"}
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer, default=str), flush=True)
"""


class Reader:
    """A read-only DuckDB session on `path`, held open by a child process until `close()`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.process = subprocess.Popen(
            [sys.executable, "-c", READER, str(self.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = self._answer()
        assert ready == {"ok": True}, ready

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            errors = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"the reader process ended: {errors}")
        return json.loads(line)

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        assert "error" not in answer, answer["error"]
        return answer

    def query(self, sql: str) -> list[list[Any]]:
        return self._ask({"query": sql})["rows"]

    def reconnect(self) -> None:
        self._ask({"reconnect": 1})

    def open_files(self) -> list[str]:
        return self._ask({"files": 1})["files"]

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=30)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def database_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's and view's rows (sorted) of the DuckDB file at `path`, opened read-only."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [
            f"{schema}.{name}"
            for schema, name in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables ORDER BY ALL"
            ).fetchall()
        ]
        return {name: con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall() for name in names}
