"""Where the local stack lives and which ports it uses, declared once.

Precedence: explicit argument > SPIRA_* environment variable > the ports recorded in $SPIRA_HOME/stack.json
by an earlier `up` > the defaults below (chosen away from the usual 8200/8333/5000/9000 so a developer's own
services do not clash).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

DEFAULT_PORTS = {
    "vault_port": 18200,
    "s3_port": 18333,
    "master_port": 19333,
    "volume_port": 18080,
    "filer_port": 18888,
    "mlflow_port": 15500,
    "registry_port": 15000,
    "nats_port": 14222,
    "nats_monitor_port": 18222,
    "prometheus_port": 19090,
}
# SeaweedFS also listens on every HTTP port + 10000 for gRPC.
GRPC_OFFSET = 10000


@dataclass(frozen=True)
class StackConfig:
    home: Path
    vault_port: int = DEFAULT_PORTS["vault_port"]
    s3_port: int = DEFAULT_PORTS["s3_port"]
    master_port: int = DEFAULT_PORTS["master_port"]
    volume_port: int = DEFAULT_PORTS["volume_port"]
    filer_port: int = DEFAULT_PORTS["filer_port"]
    mlflow_port: int = DEFAULT_PORTS["mlflow_port"]
    registry_port: int = DEFAULT_PORTS["registry_port"]
    nats_port: int = DEFAULT_PORTS["nats_port"]
    nats_monitor_port: int = DEFAULT_PORTS["nats_monitor_port"]
    prometheus_port: int = DEFAULT_PORTS["prometheus_port"]

    @property
    def state_file(self) -> Path:
        return self.home / "stack.json"

    def ports(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name.endswith("_port")}

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if k != "home"}
        self.state_file.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, home: Path | str | None = None, **overrides: int) -> StackConfig:
        home_path = Path(home or os.environ.get("SPIRA_HOME") or ".spira").resolve()
        cfg = cls(home=home_path)
        state = home_path / "stack.json"
        if state.exists():
            recorded = json.loads(state.read_text())
            cfg = replace(cfg, **{k: int(v) for k, v in recorded.items() if k in DEFAULT_PORTS})
        from_env = {
            name: int(os.environ[f"SPIRA_{name.upper()}"])
            for name in DEFAULT_PORTS
            if os.environ.get(f"SPIRA_{name.upper()}")
        }
        cfg = replace(cfg, **from_env)
        return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
