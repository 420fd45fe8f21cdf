"""`python -m intake --port P [--host H]`: the intake image's command (its pod has only the Vault contract)."""

from __future__ import annotations

import argparse

from intake.wiring import serve

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="intake")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="0.0.0.0")
    args = parser.parse_args()
    serve(args.port, args.host)
