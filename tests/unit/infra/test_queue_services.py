"""The burst path's cluster services as the Pulumi program plans them: NATS with JetStream on persistent
volumes (servers per the declaration's queue.replicas) and KEDA, each pinned and in its declared namespace.
Who reaches NATS is tests/unit/infra/test_network_policies.py's."""

from __future__ import annotations

import pytest

from infra import contracts
from infra.environments import declared
from infra.offline import Plan, Recorded
from tests.fakes.infra import where

RELEASE = "kubernetes:helm.sh/v3:Release"


def _release(plan: Plan, chart: str) -> Recorded:
    (release,) = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart]
    return release


def test_nats_runs_in_its_declared_namespace_from_the_pinned_chart_under_the_declared_service_name(
    stack_plan: Plan,
) -> None:
    nats = declared().service("nats")
    release = _release(stack_plan, "nats")
    pin = contracts.chart("nats")
    assert (release.inputs["name"], release.inputs["namespace"]) == (nats.release, nats.namespace), where(
        release
    )
    assert release.inputs["version"] == pin.version and release.inputs["repositoryOpts"]["repo"] == pin.repo
    values = release.inputs["values"]
    assert values["fullnameOverride"] == nats.service, where(release)
    assert values["config"]["nats"]["port"] == nats.port, where(release)
    assert stack_plan.outputs["natsAddress"] == nats.url == "tls://nats.nats.svc.cluster.local:4222"


def test_jetstream_keeps_its_streams_in_files_on_encrypted_persistent_volumes(stack_plan: Plan) -> None:
    release = _release(stack_plan, "nats")
    jetstream = release.inputs["values"]["config"]["jetstream"]
    from infra.components.aws import ENCRYPTED_STORAGE_CLASS

    assert jetstream["enabled"] is True and jetstream["memoryStore"]["enabled"] is False, where(release)
    pvc = jetstream["fileStore"]["pvc"]
    assert jetstream["fileStore"]["enabled"] and pvc["enabled"], f"{where(release)} keeps streams off disk"
    assert pvc["storageClassName"] == ENCRYPTED_STORAGE_CLASS, where(release)
    assert pvc["size"] == "10Gi"  # Pulumi.yaml natsVolumeSize, the same in both stacks


@pytest.mark.parametrize(("stack", "servers"), [("staging", 1), ("production", 3)])
def test_the_number_of_nats_servers_is_the_declarations_queue_replicas(stack: str, servers: int) -> None:
    from tests.fakes.infra import plan

    assert declared().queue.replicas(stack) == servers
    release = _release(plan(stack), "nats")
    cluster = release.inputs["values"]["config"]["cluster"]
    assert cluster["replicas"] == servers, where(release)
    # one server runs without routes; R3 streams need a cluster of three routed servers
    assert cluster["enabled"] is (servers > 1), where(release)


def test_nats_servers_spread_over_nodes_so_a_drain_takes_one_replica_of_a_stream(stack_plan: Plan) -> None:
    release = _release(stack_plan, "nats")
    spread = release.inputs["values"]["podTemplate"]["topologySpreadConstraints"]
    assert spread["kubernetes.io/hostname"] == {"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}


def test_the_nats_service_exposes_the_declared_monitor_port_that_kedas_scaler_reads(stack_plan: Plan) -> None:
    nats = declared().service("nats")
    values = _release(stack_plan, "nats").inputs["values"]
    assert nats.monitor_port == 8222
    assert values["config"]["monitor"] == {"enabled": True, "port": nats.monitor_port}
    assert values["service"]["ports"]["monitor"]["enabled"] is True
    # only the protocols the platform speaks
    assert [p for p, v in values["service"]["ports"].items() if v["enabled"]] == ["nats", "monitor"]


def test_keda_runs_in_its_declared_namespace_from_the_pinned_chart_and_scales_only_the_workloads(
    stack_plan: Plan,
) -> None:
    keda = declared().service("keda")
    release = _release(stack_plan, "keda")
    assert (release.inputs["name"], release.inputs["namespace"]) == (keda.release, keda.namespace), where(
        release
    )
    assert release.inputs["version"] == contracts.chart("keda").version, where(release)
    values = release.inputs["values"]
    assert values["watchNamespace"] == declared().workload_namespace, where(release)
    assert f"{values['operator']['name']}-metrics-apiserver" == keda.service, where(release)
    assert values["crds"]["install"] is True, f"{where(release)}: the ScaledObject CRD comes with the chart"


def test_nats_admits_only_the_workloads_users_with_their_declared_permissions(stack_plan: Plan) -> None:
    """No anonymous client: the chart's authorization lists the intake and the worker, each with
    infra/queue_auth.py's allow-list, their passwords from a Secret (never in the values) also written to
    Vault's nats-users, from which `spira secrets seed` gives each workload its own."""
    from infra.components.queue import NATS_USERS_SECRET, password_variable
    from infra.queue_auth import USERS, permissions
    from infra.vault import layout

    release = _release(stack_plan, "nats")
    values = release.inputs["values"]
    users = values["config"]["merge"]["authorization"]["users"]
    assert [u["user"] for u in users] == list(USERS), where(release)
    for user in users:
        assert user["password"] == f"<< ${password_variable(user['user'])} >>", where(release)
        assert user["permissions"] == permissions(declared().queue, user["user"]), where(release)
        env = values["container"]["env"][password_variable(user["user"])]
        assert env["valueFrom"]["secretKeyRef"] == {"name": NATS_USERS_SECRET, "key": user["user"]}
    intake = permissions(declared().queue, "intake")["publish"]["allow"]
    worker = permissions(declared().queue, "worker")["publish"]["allow"]
    queue = declared().queue
    assert queue.subject in intake and queue.subject not in worker  # only the intake publishes jobs
    assert not any("CONSUMER.MSG.NEXT" in s for s in intake)  # only workers take them
    assert not any(".DELETE." in s and queue.stream + "." in s for s in intake + worker)
    (secret,) = [r for r in stack_plan.of_type("kubernetes:core/v1:Secret") if r.name.endswith("-nats-users")]
    assert set(secret.inputs["stringData"]) == set(USERS), where(secret)
    vaulted = [
        r
        for r in stack_plan.resources
        if r.type == "vault:kv/secretV2:SecretV2" and r.name.endswith("nats-users")
    ]
    if vaulted:
        assert vaulted[0].inputs["name"] == layout.secret_path(stack_plan.stack, "nats-users")


CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"


def _covers(dns_name: str, host: str) -> bool:
    """TLS host name matching (RFC 6125): a leading `*` stands for exactly one label."""
    if dns_name.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == dns_name[2:]
    return dns_name == host


def _route_hosts(values: dict, replicas: int) -> list[str]:
    """The hosts the nats chart's routes dial (files/config/cluster.yaml of the pinned chart): its
    StatefulSet `<fullname>-<i>` under the headless Service `<fullname>-headless`, fully qualified with
    `routeURLs.useFQDN`."""
    fullname = values["fullnameOverride"]
    domain = f"{fullname}-headless"
    if values["config"]["cluster"].get("routeURLs", {}).get("useFQDN"):
        domain = f"{domain}.{declared().service('nats').namespace}.svc.cluster.local"
    return [f"{fullname}-{i}.{domain}" for i in range(int(replicas))]


def test_nats_serves_tls_on_its_client_port_and_routes_with_a_certificate_from_the_platform_ca(
    stack_plan: Plan,
) -> None:
    """The Queue asks cert-manager for NATS's Certificate (the ClusterIssuer of the platform CA, strictly
    valid against the upstream CRD) and the chart mounts its Secret on the client port and the routes, with
    every other value (JetStream, users, ports) kept: the TLS values are merged in, not laid over."""
    from infra.components import certificates
    from spira.manifests import contracts as manifest_contracts
    from spira.manifests import schemas

    nats = declared().service("nats")
    (cert,) = [
        c for c in stack_plan.of_type(CERTIFICATE) if c.inputs["metadata"]["namespace"] == nats.namespace
    ]
    body = {k: cert.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}
    assert schemas.validate(body, manifest_contracts.kubernetes_version()) == [], where(cert)
    assert body == certificates.nats_certificate(nats.service, nats.namespace), where(cert)
    assert cert.inputs["spec"]["issuerRef"]["name"] == certificates.ISSUER, where(cert)
    assert nats.host in cert.inputs["spec"]["dnsNames"], where(cert)
    release = _release(stack_plan, "nats")
    values = release.inputs["values"]
    secret = cert.inputs["spec"]["secretName"]
    assert values["config"]["nats"]["tls"] == {"enabled": True, "secretName": secret}, where(release)
    assert values["config"]["cluster"]["tls"] == {"enabled": True, "secretName": secret}, where(release)
    assert values["tlsCA"] == {"enabled": True, "secretName": secret, "key": "ca.crt"}, where(release)
    # merged, not replaced: the port, the routes' settings, JetStream and the users are all still there
    assert values["config"]["nats"]["port"] == nats.port, where(release)
    assert values["config"]["cluster"]["port"] == 6222 and "replicas" in values["config"]["cluster"]
    assert values["config"]["jetstream"]["fileStore"]["pvc"]["enabled"] is True, where(release)
    assert values["config"]["merge"]["authorization"]["users"], where(release)


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_every_route_a_nats_server_dials_is_a_name_its_certificate_covers(stack: str) -> None:
    """The routes verify each other's certificate by the host they dial: with the chart's short route URLs
    (`nats-0.nats-headless`) no name of the Certificate would match, so the values ask for the FQDN."""
    from infra.components import certificates
    from tests.fakes.infra import plan

    nats = declared().service("nats")
    values = _release(plan(stack), "nats").inputs["values"]
    names = certificates.nats_certificate(nats.service, nats.namespace)["spec"]["dnsNames"]
    hosts = _route_hosts(values, values["config"]["cluster"]["replicas"])
    assert hosts and all(any(_covers(n, h) for n in names) for h in hosts), (hosts, names)
    short = {**values, "config": {**values["config"], "cluster": {"replicas": 1}}}
    assert not any(_covers(n, h) for h in _route_hosts(short, 1) for n in names)


def test_kedas_scaler_still_reads_the_monitor_port_over_plain_http(stack_plan: Plan) -> None:
    """TLS is on the client port only: the monitor (/jsz, what KEDA's nats-jetstream scaler reads without
    TLS, `useHttps` unset) stays `http_port`, and the ScaledObject names it without a scheme."""
    from spira.manifests.queue_patches import monitoring_endpoint
    from spira.manifests.render import render_docs

    nats = declared().service("nats")
    values = _release(stack_plan, "nats").inputs["values"]
    assert "tls" not in values["config"]["monitor"], (
        "the chart would serve https_port, which KEDA cannot read"
    )
    assert stack_plan.outputs.get("natsMonitor", f"http://{nats.host}:{nats.monitor_port}").startswith(
        "http://"
    )
    (scaled,) = [d for d in render_docs(stack_plan.stack) if d["kind"] == "ScaledObject"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["natsServerMonitoringEndpoint"] == monitoring_endpoint()
    assert monitoring_endpoint() == f"{nats.monitor_host}:{nats.monitor_port}"
    assert trigger["metadata"].get("useHttps", "false") == "false"


def test_the_queue_refuses_a_declared_scheme_that_does_not_match_its_tls() -> None:
    """`services.nats.scheme: tls` without the platform's TLS (or TLS with `nats`) would give every client a
    URL the server does not speak: the program fails instead of planning it."""
    import pulumi

    from infra.components.queue import Queue, QueueArgs
    from tests.fakes.infra import plan

    plan("staging")  # installs the program's mocks
    assert declared().service("nats").scheme == "tls"

    @pulumi.runtime.test
    def without_tls() -> None:
        Queue("q", QueueArgs(environment="staging", storage_class="gp3", volume_size="1Gi"))

    with pytest.raises(
        ValueError, match=r"services\.nats\.scheme is tls, but the Queue is given no platform TLS"
    ):
        without_tls()
