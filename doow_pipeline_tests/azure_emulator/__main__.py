"""python -m doow_pipeline_tests.azure_emulator --scenario FILE [--port N] [--state-dir DIR]

Serves Entra ID, ARM and Azure Monitor over HTTPS on 127.0.0.1. When ready, prints one JSON line
{"authority", "arm", "metrics" (batch endpoint template with {region}), "prices" (the Retail Prices API),
"ca_cert"} to stdout and writes it to STATE_DIR/endpoints.json; serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

import yaml

from .app import EmulatorApp
from .quirks import Quirks
from .scenario import ScenarioError, scenario_from_dict
from .server import EmulatorHTTPServer
from .tls import make_tls


def load_validator(app_violations: list):
    """validate_response from spec_validation.py when that module exists; None otherwise."""
    try:
        from .spec_validation import validate_response  # type: ignore[import-not-found]
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith("spec_validation"):
            return None
        app_violations.append(
            {
                "seq": 0,
                "kind": "startup",
                "status": 0,
                "method": "",
                "path": "",
                "problems": [f"spec_validation import failed: {exc!r}"],
            }
        )
        return None
    except Exception as exc:  # noqa: BLE001 - last resort: any import-time error; the module exists but is broken: make every test notice
        app_violations.append(
            {
                "seq": 0,
                "kind": "startup",
                "status": 0,
                "method": "",
                "path": "",
                "problems": [f"spec_validation import failed: {exc!r}"],
            }
        )
        return None
    return validate_response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m doow_pipeline_tests.azure_emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", required=True, help="scenario YAML file")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--state-dir", help="where ca.pem, server.pem and endpoints.json go (default: a temp dir)")
    parser.add_argument(
        "--no-spec-validation",
        action="store_true",
        help="do not validate responses with spec_validation.py (benchmarks)",
    )
    parser.add_argument("--log-level", default=os.environ.get("AZURE_EMULATOR_LOG", "WARNING"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s azure-emulator %(levelname)s %(message)s"
    )

    scenario_path = Path(args.scenario).resolve()
    try:
        raw = yaml.safe_load(scenario_path.read_text(encoding="utf-8"))
        scenario = scenario_from_dict(raw, source=str(scenario_path))
        quirks = Quirks.from_raw((raw or {}).get("quirks"))
    except (OSError, yaml.YAMLError, ScenarioError, ValueError, TypeError) as exc:
        print(f"azure-emulator: cannot load scenario {scenario_path}: {exc}", file=sys.stderr)
        return 2

    state_dir = Path(args.state_dir).resolve() if args.state_dir else Path(tempfile.mkdtemp(prefix="azure-emulator-"))
    ssl_context, ca_path = make_tls(state_dir)
    app = EmulatorApp(scenario, quirks)
    if not args.no_spec_validation:
        app.validator = load_validator(app.violations)
    server = EmulatorHTTPServer(("127.0.0.1", args.port), app, ssl_context)
    port = server.server_address[1]
    base = f"https://127.0.0.1:{port}"
    app.base_url = base
    endpoints = {"authority": base, "arm": base, "metrics": base + "/{region}", "prices": base, "ca_cert": str(ca_path)}
    (state_dir / "endpoints.json").write_text(json.dumps(endpoints) + "\n", encoding="utf-8")

    stopping = threading.Event()

    def stop(signum, frame):  # noqa: ARG001
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write(json.dumps(endpoints) + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
