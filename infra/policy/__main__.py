"""The CrossGuard pack: `pulumi preview --policy-pack infra/policy` (the rules are in rules.py).

The environment a stack stands for comes from the policy config (`environment`), so production's
stricter Vault rule applies to production; it defaults to production, the strict side.
"""

import sys
from pathlib import Path

# Run by the policy engine as a script directory; the rules import the `infra` package.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from infra.environments import declared
from infra.policy.rules import RULES, Rule

ENV_SCHEMA = PolicyConfigSchema(
    properties={"environment": {"type": "string", "enum": list(declared().clusters), "default": "production"}}
)


def _validator(rule: Rule):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        environment = (args.get_config() or {}).get("environment", "production")
        for message in rule(args.resource_type, args.props, environment):
            report_violation(message, args.urn)

    return validate


PolicyPack(
    name="spira-platform",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(
            name=name, description=description, validate=_validator(rule), config_schema=ENV_SCHEMA
        )
        for name, (description, rule) in RULES.items()
    ],
)
