"""Backups as code for the local stack: `spira backup create --out DIR` and `spira backup restore DIR`.

A backup holds OpenBao's raft snapshot (and the keys that unseal it), every object of every bucket and the
object store's identities, and MLflow's database, with a manifest of every file's sha256
(docs/runbooks/backup.md). Ports in `ports.py`, the drill in `drill.py`, adapters per service, one wiring
function in `wiring.py`.
"""
