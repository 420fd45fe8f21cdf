"""Managed Postgres (RDS) for MLflow's backend store: private, encrypted, backed up."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.components.aws.security import cluster_only
from infra.config import MlflowSettings

POSTGRES_ENGINE_VERSION = "17"
DB_NAME = "mlflow"
DB_USER = "mlflow"


@dataclass(frozen=True)
class PostgresArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    # Only the cluster's nodes and pods (the EKS cluster security group) may connect.
    client_security_group_id: pulumi.Input[str]
    settings: MlflowSettings
    tags: dict[str, str]


class Postgres(pulumi.ComponentResource):
    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:aws:Postgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets", subnet_ids=args.subnet_ids, tags=args.tags, opts=child
        )
        sg = cluster_only(
            name, args.vpc_id, 5432, "Postgres", args.client_security_group_id, args.tags, child
        )
        key = aws.kms.Key(
            f"{name}-storage",
            description=f"{name}: RDS storage encryption",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=child,
        )
        # RDS forbids '/', '@', '"' and spaces in the master password.
        self.password = random.RandomPassword(
            f"{name}-password", length=32, special=True, override_special="!#%^*-_=+", opts=child
        )
        self.instance = aws.rds.Instance(
            f"{name}-db",
            engine="postgres",
            engine_version=POSTGRES_ENGINE_VERSION,
            instance_class=args.settings.db_instance_class,
            allocated_storage=args.settings.db_storage_gb,
            max_allocated_storage=args.settings.db_storage_gb * 2,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key.arn,
            db_name=DB_NAME,
            username=DB_USER,
            password=self.password.result,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[sg.id],
            publicly_accessible=False,
            multi_az=args.settings.db_multi_az,
            backup_retention_period=7,
            # Same safety in every stack: tearing a stack down is a deliberate two-step act, and the
            # experiment history survives it as a final snapshot.
            deletion_protection=True,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{name}-final",
            auto_minor_version_upgrade=True,
            tags=args.tags,
            opts=child,
        )
        self.register_outputs({"address": self.instance.address})
