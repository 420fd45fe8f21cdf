"""ECR repositories for the single-build images: immutable tags, scanned on push, KMS-encrypted."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class RegistryArgs:
    repositories: tuple[str, ...]
    tags: dict[str, str]


class Registry(pulumi.ComponentResource):
    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("spira:aws:Registry", name, None, opts)
        self.repositories = {
            repo: aws.ecr.Repository(
                f"{name}-{repo}",
                name=repo,
                # A tag names one build forever: promotion moves digests, never retags.
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")
                ],
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for repo in args.repositories
        }
        self.urls: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            **{repo: r.repository_url for repo, r in self.repositories.items()}
        )
        self.register_outputs({"repositoryUrls": self.urls})
