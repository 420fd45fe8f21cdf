"""VPC and EKS control plane with an OIDC provider for service-account tokens."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.aws.iam import assume_role_policy, service_role

EKS_CLUSTER_POLICIES = ("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",)


@dataclass(frozen=True)
class NetworkClusterArgs:
    kubernetes_version: str
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    public_access_cidrs: tuple[str, ...]
    tags: dict[str, str]


def _subnets(vpc_cidr: str, count: int) -> tuple[list[str], list[str]]:
    """Public /20s for load balancers and NAT, private /19s for nodes and databases, from one /16."""
    net = ipaddress.ip_network(vpc_cidr)
    private = [str(s) for s in list(net.subnets(new_prefix=19))[:count]]
    public = [str(s) for s in list(net.subnets(new_prefix=20))[-count:]]
    return public, private


class NetworkCluster(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:aws:NetworkCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        azs = args.availability_zones
        public_cidrs, private_cidrs = _subnets(args.vpc_cidr, len(azs))

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**args.tags, "Name": f"{name}-vpc"},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=args.tags, opts=child)
        self.public_subnets = [
            aws.ec2.Subnet(
                f"{name}-public-{az}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=az,
                map_public_ip_on_launch=False,
                tags={**args.tags, "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            for az, cidr in zip(azs, public_cidrs, strict=True)
        ]
        self.private_subnets = [
            aws.ec2.Subnet(
                f"{name}-private-{az}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=az,
                tags={**args.tags, "kubernetes.io/role/internal-elb": "1"},
                opts=child,
            )
            for az, cidr in zip(azs, private_cidrs, strict=True)
        ]
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=args.tags,
            opts=child,
        )
        for az, subnet in zip(azs, self.public_subnets, strict=True):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{az}", subnet_id=subnet.id, route_table_id=public_rt.id, opts=child
            )
        # One NAT gateway: nodes only pull images and reach AWS APIs outbound; the control plane and
        # the workloads keep running if it is replaced.
        eip = aws.ec2.Eip(f"{name}-nat", domain="vpc", tags=args.tags, opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=eip.id,
            subnet_id=self.public_subnets[0].id,
            tags=args.tags,
            opts=child,
        )
        private_rt = aws.ec2.RouteTable(
            f"{name}-private",
            vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
            tags=args.tags,
            opts=child,
        )
        for az, subnet in zip(azs, self.private_subnets, strict=True):
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{az}", subnet_id=subnet.id, route_table_id=private_rt.id, opts=child
            )

        # Kubernetes Secrets are envelope-encrypted with a customer key (encryption at rest).
        self.secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"{name}: envelope encryption of Kubernetes Secrets",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=child,
        )
        role = service_role(f"{name}-cluster", "eks.amazonaws.com", EKS_CLUSTER_POLICIES, args.tags, child)
        self.cluster = aws.eks.Cluster(
            f"{name}-eks",
            version=args.kubernetes_version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=[s.id for s in self.private_subnets + self.public_subnets],
                endpoint_private_access=True,
                # Private by default: the API answers on the internet only when the stack lists the CIDRs
                # that may reach it (config publicAccessCidrs), never to all of it (CrossGuard
                # eks-api-not-open-to-the-internet).
                endpoint_public_access=bool(args.public_access_cidrs),
                public_access_cidrs=list(args.public_access_cidrs) or None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(authentication_mode="API"),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"],
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=self.secrets_key.arn),
            ),
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=args.tags,
            opts=child,
        )
        self.oidc_issuer: pulumi.Output[str] = self.cluster.identities.apply(
            lambda ids: ids[0].oidcs[0].issuer
        )
        # IRSA: IAM trusts the cluster's token issuer, so pods can assume roles by service account.
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=args.tags,
            opts=child,
        )
        self.kubeconfig = pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data
        ).apply(lambda a: _kubeconfig(*a))
        self.kube_provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True, opts=child
        )
        self.register_outputs(
            {
                "clusterName": self.cluster.name,
                "oidcIssuer": self.oidc_issuer,
                "vpcId": self.vpc.id,
            }
        )

    def irsa_role(
        self, name: str, namespace: str, service_account: str, tags: dict[str, str]
    ) -> aws.iam.Role:
        """An IAM role that exactly one Kubernetes service account may assume."""
        issuer_host = self.oidc_issuer.apply(lambda url: url.removeprefix("https://"))
        policy = pulumi.Output.all(self.oidc_provider.arn, issuer_host).apply(
            lambda a: assume_role_policy(
                {"Federated": a[0]},
                "sts:AssumeRoleWithWebIdentity",
                {
                    "StringEquals": {
                        f"{a[1]}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{a[1]}:aud": "sts.amazonaws.com",
                    }
                },
            )
        )
        return aws.iam.Role(
            name, assume_role_policy=policy, tags=tags, opts=pulumi.ResourceOptions(parent=self)
        )


def _kubeconfig(cluster_name: str, endpoint: str, ca_data: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (no long-lived credential in state)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
            ],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--output", "json"],
                        }
                    },
                }
            ],
        }
    )
