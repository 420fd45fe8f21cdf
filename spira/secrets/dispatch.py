"""The candidate step's GitHub credential (spira/workflow/candidate.py): the repository (`owner/name`) and a
token allowed to send it a `repository_dispatch`. The operator sets them in the cluster's Pulumi stack
(`repoUrl`, and the secret config `candidateDispatchToken`); `pulumi up` writes them to the operators'
`candidate-dispatch` secret; seeding copies both keys into the training secret (check-and-set on the version
read), where the step reads them at run time like every credential. A changed token reaches training at the
next seed, as the NATS passwords do (spira/secrets/nats_users.py).
"""

from __future__ import annotations

import hvac
import hvac.exceptions

from infra.vault import layout
from spira.secrets.copies import read_versioned, write_if_unchanged

SOURCE, TARGET = "candidate-dispatch", "training"


def seed_dispatch(env: str, vault: hvac.Client) -> str:
    """Copy the dispatch credential into the training secret; returns 'created' | 'updated' | 'kept' |
    'no secret' (training not seeded yet) | 'no dispatch credential yet' | 'retry' (check-and-set lost)."""
    try:
        source = read_versioned(vault, env, SOURCE)[0]
    except hvac.exceptions.InvalidPath:
        return "no dispatch credential yet"
    want = {k: source[k] for k in layout.DISPATCH_KEYS if source.get(k)}
    if set(want) != set(layout.DISPATCH_KEYS):
        return "no dispatch credential yet"
    try:
        data, version = read_versioned(vault, env, TARGET)
    except hvac.exceptions.InvalidPath:
        return "no secret"
    current = {k: data.get(k) for k in layout.DISPATCH_KEYS}
    if current == want:
        return "kept"
    if not write_if_unchanged(vault, env, TARGET, {**data, **want}, version):
        return "retry"
    return "updated" if any(current.values()) else "created"
