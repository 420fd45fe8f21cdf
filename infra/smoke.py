"""`spira infra smoke --stack S`: after a `pulumi up`, what the offline plan cannot show, checked on the
cluster with the operator's own `kubectl`, `vault` and `pulumi` (kubeconfig, VAULT_ADDR, VAULT_CACERT and
an operator VAULT_TOKEN as docs/infra.md sets them up):

- every workload namespace holds the ConfigMap with the Vault CA the stack created;
- the Prometheus the rollouts' analysis queries answers on the declared Service and port;
- the Cluster Autoscaler runs;
- the operators' OIDC role exists with the operator policy;
- MLflow refuses a request without credentials.

Each probe is one command and a test of its output; the commands go through a runner, so the logic is
tested offline (tests/unit/infra/test_smoke.py) and the operator sees exactly what ran.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from infra.environments import declared
from infra.vault import layout

# (argv) -> (exit code, stdout + stderr)
Runner = Callable[[list[str]], tuple[int, str]]

AUTOSCALER_SELECTOR = "app.kubernetes.io/instance=cluster-autoscaler"
MLFLOW_UNAUTHENTICATED = (
    "import urllib.request, urllib.error\n"
    "try:\n"
    "    urllib.request.urlopen('http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1')\n"
    "    print('200')\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(e.code)\n"
)


@dataclass(frozen=True)
class Probe:
    what: str
    argv: list[str]
    passes: Callable[[str], bool]


@dataclass(frozen=True)
class Outcome:
    probe: Probe
    ok: bool
    output: str


def subprocess_runner(argv: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        return 127, f"{argv[0]} not found on PATH"
    except subprocess.TimeoutExpired:
        return 124, "timed out after 60 s"
    return proc.returncode, proc.stdout + proc.stderr


def ca_pem(stack: str, runner: Runner) -> str:
    code, out = runner(["pulumi", "stack", "output", "vaultCaCertPem", "--show-secrets", "--stack", stack])
    if code != 0:
        raise RuntimeError(f"pulumi stack output vaultCaCertPem failed: {out.strip()}")
    return out


def probes(env: str, vault_ca_pem: str) -> list[Probe]:
    table = declared()
    ns, ca = table.workload_namespace, table.vault_ca
    prometheus = table.service("prometheus")
    mlflow = table.service("mlflow")
    operator = layout.operator_role_name(env)
    ca_key_path = ca.key.replace(".", "\\.")  # jsonpath escapes the dot in `ca.crt`
    return [
        Probe(
            f"ConfigMap {ns}/{ca.configmap} holds the stack's Vault CA as {ca.key}",
            ["kubectl", "-n", ns, "get", "configmap", ca.configmap, "-o",
             f"jsonpath={{.data.{ca_key_path}}}"],
            lambda out: out.strip() == vault_ca_pem.strip(),
        ),
        Probe(
            f"Prometheus answers queries at {prometheus.url}",
            ["kubectl", "-n", prometheus.namespace, "get", "--raw",
             f"/api/v1/namespaces/{prometheus.namespace}/services/{prometheus.service}:{prometheus.port}"
             "/proxy/api/v1/query?query=up"],
            lambda out: '"status":"success"' in out.replace(" ", ""),
        ),
        Probe(
            "the Cluster Autoscaler has a ready replica",
            ["kubectl", "-n", "kube-system", "get", "deployment", "-l", AUTOSCALER_SELECTOR, "-o",
             "jsonpath={.items[*].status.readyReplicas}"],
            lambda out: any(v.isdigit() and int(v) > 0 for v in out.split()),
        ),
        Probe(
            f"operators log in through auth/{layout.OIDC_MOUNT} as {operator}",
            ["vault", "read", "-field=token_policies", f"auth/{layout.OIDC_MOUNT}/role/{operator}"],
            lambda out: layout.operator_policy_name(env) in out,
        ),
        Probe(
            "MLflow refuses a request without credentials (401)",
            ["kubectl", "-n", mlflow.namespace, "exec", f"deploy/{mlflow.service}", "-c", "mlflow", "--",
             "python", "-c", MLFLOW_UNAUTHENTICATED.format(port=mlflow.port)],
            lambda out: out.strip().endswith("401"),
        ),
    ]  # fmt: skip


def run(env: str, runner: Runner = subprocess_runner, stack: str | None = None) -> list[Outcome]:
    pem = ca_pem(stack or env, runner)
    outcomes = []
    for probe in probes(env, pem):
        code, out = runner(probe.argv)
        outcomes.append(Outcome(probe, code == 0 and probe.passes(out), out.strip()))
    return outcomes
