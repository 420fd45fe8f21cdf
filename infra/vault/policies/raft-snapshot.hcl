# ${service} in ${env} also takes Vault's raft snapshots (GET sys/storage/raft/snapshot), read only:
# it can neither restore one (snapshot-force), nor join, remove or list peers, nor read another secret.
path "sys/storage/raft/snapshot" {
  capabilities = ["read"]
}
