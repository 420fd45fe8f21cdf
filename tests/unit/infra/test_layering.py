"""infra/ imports no application code: the clusters' program depends only on Pulumi and its own files."""

from __future__ import annotations

import ast
import sys

from infra.contracts import INFRA_DIR

ALLOWED_ROOTS = {"infra", "pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_vault", "pulumi_random",
                 "pulumi_tls", "pulumi_policy", "yaml", "typer", "rich", "click"}  # fmt: skip


def test_infra_imports_only_pulumi_its_own_modules_and_the_standard_library() -> None:
    offenders = []
    for path in INFRA_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                if root not in ALLOWED_ROOTS and root not in sys.stdlib_module_names:
                    offenders.append(f"{path.relative_to(INFRA_DIR.parent)} imports {name}")
    assert offenders == []
