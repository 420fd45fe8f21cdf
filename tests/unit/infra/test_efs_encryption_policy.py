"""CrossGuard `efs-encrypted`: the archive spool's EFS (patients' uploads not yet archived) is encrypted at
rest with its own KMS key and mounted over TLS. The rule is called directly, then run over both stacks'
plans under Pulumi mocks, and over the real program with the spool's file system built unencrypted, where
it names that resource's URN."""

from __future__ import annotations

import pulumi_aws as aws
import pytest

from infra.components.aws import spool
from infra.offline import Plan, run
from infra.policy import rules
from tests.fakes.infra import where

EFS = rules.EFS_FILE_SYSTEM
SC = rules.STORAGE_CLASS


def test_an_efs_encrypted_with_its_own_key_passes() -> None:
    assert (
        rules.efs_encrypted(EFS, {"encrypted": True, "kmsKeyId": "arn:aws:kms:eu-west-1:1:key/k"}, "x") == []
    )


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({}, "not encrypted at rest"),
        ({"encrypted": False, "kmsKeyId": "arn:aws:kms:eu-west-1:1:key/k"}, "not encrypted at rest"),
        ({"encrypted": True}, "AWS-managed key"),
    ],
)
def test_an_unencrypted_efs_or_one_on_the_aws_managed_key_fails(props: dict, message: str) -> None:
    (found,) = rules.efs_encrypted(EFS, props, "staging")
    assert message in found
    assert ("efs-encrypted", found) in rules.check(EFS, props, "staging")


def test_an_efs_storage_class_must_mount_over_tls_and_other_classes_are_not_its_business() -> None:
    efs = {"provisioner": "efs.csi.aws.com", "parameters": {"provisioningMode": "efs-ap"}}
    assert rules.efs_encrypted(SC, {**efs, "mountOptions": ["tls"]}, "x") == []
    assert "TLS" in rules.efs_encrypted(SC, efs, "x")[0]
    assert rules.efs_encrypted(SC, {"provisioner": "ebs.csi.aws.com"}, "x") == []


def test_the_spools_file_system_and_storage_class_pass_in_both_stacks(stack_plan: Plan) -> None:
    (fs,) = stack_plan.of_type(EFS)
    assert rules.efs_encrypted(fs.type, fs.inputs, stack_plan.stack) == [], where(fs)
    (sc,) = [s for s in stack_plan.of_type(SC) if s.inputs["metadata"]["name"] == spool.SPOOL_STORAGE_CLASS]
    assert rules.efs_encrypted(sc.type, sc.inputs, stack_plan.stack) == [], where(sc)


def test_the_program_with_an_unencrypted_spool_is_refused_naming_the_file_system(monkeypatch) -> None:
    real = aws.efs.FileSystem

    def unencrypted(name, **kwargs):
        kwargs.update(encrypted=False, kms_key_id=None)
        return real(name, **kwargs)

    monkeypatch.setattr(spool.aws.efs, "FileSystem", unencrypted)
    plan = run("staging")
    (fs,) = plan.of_type(EFS)
    found = [
        (rule, msg)
        for r in plan.resources
        if r.custom
        for rule, msg in rules.check(r.type, r.inputs, "staging")
    ]
    assert found == [
        ("efs-encrypted", "EFS file system is not encrypted at rest (encrypted must be true)")
    ], where(fs)
