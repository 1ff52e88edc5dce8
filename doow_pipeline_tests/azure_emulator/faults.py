"""Fault injection (control API `POST /_emulator/faults`).

A fault: {"match": KIND or path regex, "action": {"status": N} | "reset" | "truncate" | {"delay": S},
          "probability": p | "nth": [1, 2], "times": k, "retry_after": s, "body": {...}, "method": "GET"}
- match: an endpoint kind (token, openid, subscriptions, resource_groups, accounts, account, deployments,
  definitions, metrics, batch, write; "arm" = every ARM kind; "*" = everything) or else a regular
  expression searched in the request path, and in path?query.
- nth: 1-based numbers of the matching calls that fire (counted per fault); probability: chance per call
  (seeded, reproducible); neither: every matching call. times: stop after k firings.
- status: answer with that status (Azure-shaped default body per endpoint; `body` overrides it, `body_text`
  overrides it with raw text served as is, e.g. truncated JSON) and
  `Retry-After: retry_after` when given. reset: close the TCP connection without answering.
  truncate: answer normally, but close the connection after half the body (its Content-Length announces all
  of it): a connection dropped mid-answer, which a client sees as an incomplete read.
  delay: sleep S seconds, then serve normally (a stall).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

ARM_KINDS = {
    "subscriptions",
    "subscription",
    "resource_groups",
    "accounts",
    "account",
    "deployments",
    "definitions",
    "metrics",
    "write",
}
KINDS = ARM_KINDS | {"token", "openid", "batch", "unknown"}


class FaultSpecError(ValueError):
    pass


@dataclass
class Fault:
    index: int
    match: str
    action: str  # status | reset | truncate | delay
    status: int | None = None
    delay: float = 0.0
    probability: float | None = None
    nth: frozenset[int] | None = None
    times: int | None = None
    retry_after: float | None = None
    body: object = None
    body_text: str | None = None
    method: str | None = None
    regex: re.Pattern | None = None
    seen: int = 0
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def matches(self, kind: str, method: str, path: str, query: str = "") -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.regex is None:
            return self.match == "*" or kind == self.match or (self.match == "arm" and kind in ARM_KINDS)
        return self.regex.search(path) is not None or (bool(query) and self.regex.search(f"{path}?{query}") is not None)

    def describe(self) -> dict:
        out = {"index": self.index, "match": self.match, "action": self.action, "seen": self.seen, "fired": self.fired}
        for key in ("status", "delay", "probability", "times", "retry_after", "method"):
            value = getattr(self, key)
            if value not in (None, 0.0) or (key == "delay" and self.action == "delay"):
                out[key] = value
        if self.nth is not None:
            out["nth"] = sorted(self.nth)
        return out


def parse_fault(raw: dict, index: int, seed: int) -> Fault:
    if not isinstance(raw, dict):
        raise FaultSpecError(f"fault {index}: expected an object")
    match = raw.get("match")
    if not isinstance(match, str) or not match:
        raise FaultSpecError(f"fault {index}: 'match' must be an endpoint kind or a path regex")
    action = raw.get("action")
    fault = Fault(index=index, match=match, action="status")
    if action == "reset" or (isinstance(action, dict) and action.get("reset")):
        fault.action = "reset"
    elif action == "truncate":
        fault.action = "truncate"
    elif isinstance(action, dict) and "status" in action:
        fault.status = int(action["status"])
        if not 100 <= fault.status <= 599:
            raise FaultSpecError(f"fault {index}: status {fault.status} out of range")
    elif isinstance(action, dict) and "delay" in action:
        fault.action = "delay"
        fault.delay = float(action["delay"])
    elif isinstance(action, int):
        fault.status = action
    else:
        raise FaultSpecError(
            f'fault {index}: \'action\' must be {{"status": N}}, "reset", "truncate" or {{"delay": S}}'
        )
    if "probability" in raw and raw["probability"] is not None:
        fault.probability = float(raw["probability"])
    if "nth" in raw and raw["nth"] is not None:
        nth = raw["nth"]
        fault.nth = frozenset(int(n) for n in (nth if isinstance(nth, (list, tuple)) else [nth]))
    if raw.get("times") is not None:
        fault.times = int(raw["times"])
    if raw.get("retry_after") is not None:
        fault.retry_after = float(raw["retry_after"])
    fault.body = raw.get("body")
    body_text = raw.get("body_text")
    if body_text is not None and not isinstance(body_text, str):
        raise FaultSpecError(f"fault {index}: 'body_text' must be a string")
    fault.body_text = body_text
    fault.method = raw.get("method")
    if match not in KINDS and match not in ("*", "arm"):
        try:
            fault.regex = re.compile(match)
        except re.error as exc:
            raise FaultSpecError(f"fault {index}: bad regex {match!r}: {exc}") from exc
    fault.rng = random.Random(f"{seed}/{index}/{match}")
    return fault


class FaultRegistry:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.counter = 0

    def add(self, raws) -> list[int]:
        if isinstance(raws, dict):
            raws = [raws]
        if not isinstance(raws, list):
            raise FaultSpecError("expected a JSON list of faults")
        with self.lock:
            parsed = []
            for raw in raws:
                parsed.append(parse_fault(raw, self.counter, self.seed))
                self.counter += 1
            self.faults.extend(parsed)
            return [f.index for f in parsed]

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def list(self) -> list[dict]:
        with self.lock:
            return [f.describe() for f in self.faults]

    def pick(self, kind: str, method: str, path: str, query: str = "") -> Fault | None:
        """The first fault that fires for this request (each matching fault counts the call)."""
        chosen = None
        with self.lock:
            for fault in self.faults:
                if not fault.matches(kind, method, path, query):
                    continue
                fault.seen += 1
                if chosen is not None:
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if fault.nth is not None:
                    fire = fault.seen in fault.nth
                elif fault.probability is not None:
                    fire = fault.rng.random() < fault.probability
                else:
                    fire = True
                if fire:
                    fault.fired += 1
                    chosen = fault
        return chosen
