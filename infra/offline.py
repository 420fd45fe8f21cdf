"""Run the Pulumi program without the engine, a cloud or provider plugins: Pulumi's mocks stand in for
the engine, the config comes from the real Pulumi.yaml + Pulumi.<stack>.yaml, and every resource the
program registers is recorded (type, name, URN, inputs) for the plan table, the diff and the tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.config import PROJECT
from infra.contracts import INFRA_DIR, REPO_ROOT
from infra.environments import declared

STACKS = declared().clusters
PROGRAM = INFRA_DIR / "__main__.py"


# ---------------------------------------------------------------------------------------------- config
def _config_value(value: Any) -> str:
    """Pulumi passes config to programs as strings; structured values as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _qualify(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


# What an offline run hands the program for a key Pulumi.yaml declares `secret: true`: the real value is
# encrypted in the operator's stack (`pulumi config set --secret`) and never decrypted here; the mocks
# never send it anywhere.
OFFLINE_SECRET = "offline-stand-in-for-{key}"


def secret_keys(root: Path = REPO_ROOT) -> list[str]:
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())
    return [
        _qualify(key)
        for key, decl in (project.get("config") or {}).items()
        if isinstance(decl, dict) and decl.get("secret")
    ]


def stack_config(stack: str, root: Path = REPO_ROOT) -> dict[str, str]:
    """The config the Pulumi CLI would hand the program: Pulumi.yaml defaults and values, overlaid by the
    stack file. A key declared without default and missing from the stack file stays absent, so the
    program's `require` fails as it would under `pulumi up`; a secret key gets a stand-in value."""
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise FileNotFoundError(f"no stack file {stack_file.name}; stacks are {', '.join(STACKS)}")
    out: dict[str, str] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and ("default" in decl or "value" in decl):
            out[_qualify(key)] = _config_value(decl.get("value", decl.get("default")))
        elif not isinstance(decl, dict):
            out[_qualify(key)] = _config_value(decl)
    for key, value in (yaml.safe_load(stack_file.read_text()).get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            if _qualify(key) in secret_keys(root):
                continue  # encrypted by the operator's Pulumi; the stand-in below takes its place
            raise ValueError(
                f"{stack_file.name}: {key} is a secret Pulumi.yaml does not declare `secret: true`; "
                "offline runs never decrypt secrets"
            )
        out[_qualify(key)] = _config_value(value)
    for key in secret_keys(root):
        out.setdefault(key, OFFLINE_SECRET.format(key=key))
    return out


# ----------------------------------------------------------------------------------------------- mocks
def _fake(kind: str, name: str) -> str:
    return f"{kind}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def _outputs(typ: str, name: str, inputs: dict[str, Any], region: str) -> dict[str, Any]:
    """Provider-computed outputs the program reads, with stable fake values."""
    arn = f"arn:aws:{typ.split(':')[1].split('/')[0]}:{region}:123456789012:{name}"
    if typ == "aws:eks/cluster:Cluster":
        oidc = _fake("oidc", name).upper()
        return {
            "arn": arn,
            "name": name,
            "endpoint": f"https://{_fake('eks', name)}.gr7.{region}.eks.amazonaws.com",
            "certificateAuthority": {"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"},
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{oidc}"}]}],
            "vpcConfig": {**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": _fake("sg", name)},
        }
    if typ == "aws:kms/key:Key":
        return {"arn": arn, "keyId": _fake("key", name)}
    if typ == "aws:rds/instance:Instance":
        host = f"{name}.{_fake('db', name)}.{region}.rds.amazonaws.com"
        return {"arn": arn, "address": host, "port": 5432, "endpoint": f"{host}:5432"}
    if typ == "aws:ecr/repository:Repository":
        return {"arn": arn, "repositoryUrl": f"123456789012.dkr.ecr.{region}.amazonaws.com/{inputs['name']}"}
    if typ == "aws:eks/nodeGroup:NodeGroup":
        return {"arn": arn, "nodeGroupName": name}
    if typ == "random:index/randomPassword:RandomPassword":
        return {"result": _fake("generated", name)[: int(inputs.get("length", 16))]}
    if typ == "tls:index/privateKey:PrivateKey":
        return {
            "privateKeyPem": f"-----BEGIN PRIVATE KEY-----\n{_fake('k', name)}\n-----END PRIVATE KEY-----\n"
        }
    if typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
        return {"certPem": f"-----BEGIN CERTIFICATE-----\n{_fake('c', name)}\n-----END CERTIFICATE-----\n"}
    if typ == "tls:index/certRequest:CertRequest":
        return {"certRequestPem": "-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"}
    if typ.startswith("aws:"):
        return {"arn": arn, "name": inputs.get("name", name)}
    return {}


def _unwrap_secrets(value: Any, path: str, secrets: list[str]) -> Any:
    """Replace the engine's secret envelopes by their values, noting where they were."""
    from pulumi.runtime import rpc

    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            secrets.append(path)
            return _unwrap_secrets(value.get("value"), path, secrets)
        return {k: _unwrap_secrets(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


@dataclass(frozen=True)
class Recorded:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str
    custom: bool
    # Input paths the program marked secret (encrypted in state, masked in previews).
    secret_paths: tuple[str, ...] = ()
    # What the (mock) provider answered: inputs plus computed outputs.
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def parent_types(self) -> tuple[str, ...]:
        qualified = self.urn.split("::")[2]
        return tuple(qualified.split("$")[:-1])


@dataclass
class Plan:
    stack: str
    resources: list[Recorded] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name: str) -> Recorded:
        found = [r for r in self.resources if r.type == typ and r.name == name]
        if len(found) != 1:
            raise LookupError(f"{len(found)} resources of type {typ} named {name} in stack {self.stack}")
        return found[0]


def _make_mocks(region: str) -> Any:
    import pulumi

    class RecordingMocks(pulumi.runtime.Mocks):
        """Answers the engine's calls with stable fake outputs and records what the program asked for."""

        def __init__(self) -> None:
            self.created: list[tuple[str, str, dict[str, Any], str, bool]] = []

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            self.created.append(
                (args.typ, args.name, dict(args.inputs), args.provider or "", bool(args.custom))
            )
            state = {**args.inputs, **_outputs(args.typ, args.name, args.inputs, region)}
            return _fake("id", f"{args.typ}/{args.name}"), state

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
            raise NotImplementedError(f"the program must not invoke {args.token}: plans stay offline")

    return RecordingMocks()


def run(stack: str, root: Path = REPO_ROOT, overrides: dict[str, Any] | None = None) -> Plan:
    """Run the program for a stack under mocks and return what it registered and exported.

    `overrides` sets config keys on top of the stack file, as `pulumi config set` would (e.g. the other
    object-store engine)."""
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import settings as pulumi_settings

    config = stack_config(stack, root)
    config.update({_qualify(k): _config_value(v) for k, v in (overrides or {}).items()})
    region = config.get("aws:region", "")
    recorder = _make_mocks(region)
    monitor = pulumi_mocks.MockMonitor(recorder)
    # Pulumi's mocks create futures on the thread's current event loop; an earlier asyncio.run() in the same
    # process (a NATS client, say) leaves the thread without one, so give it a new loop when it has none.
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    # A fresh root stack resource per run, so two stacks can be planned in one process.
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys(root))
    exported: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        namespace = runpy.run_path(str(PROGRAM), run_name="__main__")
        del namespace
        stack_outputs = pulumi_settings.get_root_resource().outputs  # type: ignore[union-attr]
        return (
            pulumi.Output.all(**stack_outputs).apply(exported.update)
            if stack_outputs
            else pulumi.Output.from_input(None)
        )

    program()
    plan = Plan(stack=stack, outputs=exported)
    for urn, registration in monitor.get_registered_resources().items():
        name = urn.rsplit("::", 1)[1]
        typ = urn.split("::")[2].split("$")[-1]
        match = next((c for c in recorder.created if c[0] == typ and c[1] == name), None)
        secrets: list[str] = []
        inputs = _unwrap_secrets(match[2] if match else dict(registration.state), "", secrets)
        plan.resources.append(
            Recorded(
                urn=urn,
                type=typ,
                name=name,
                inputs=inputs,
                provider=match[3] if match else "",
                custom=match[4] if match else True,
                secret_paths=tuple(secrets),
                state=_unwrap_secrets(dict(registration.state), "", []),
            )
        )
    plan.resources.sort(key=lambda r: r.urn)
    return plan
