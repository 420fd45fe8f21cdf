# Operators of ${env}: seed and rotate the environment's secrets, read the object-store admin secret,
# and record rotations in KV metadata. No sys/ access, no other environment.
path "${kv_mount}/data/spira/${env}/*" {
  capabilities = ["create", "read", "update"]
}

path "${kv_mount}/metadata/spira/${env}/*" {
  capabilities = ["read", "list", "update"]
}

path "${kv_mount}/metadata/spira/${env}" {
  capabilities = ["list"]
}
