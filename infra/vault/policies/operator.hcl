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

# Hospitals' credentials for /predict (infra/vault/clients.py): issue a hospital its own secret ID, list
# and revoke them; read the role ID to hand over with it. Nothing else of the AppRole mount.
path "auth/approle/role/spira-${env}-predict-hospital/role-id" {
  capabilities = ["read"]
}

path "auth/approle/role/spira-${env}-predict-hospital/secret-id" {
  capabilities = ["update", "list"]
}

path "auth/approle/role/spira-${env}-predict-hospital/secret-id/*" {
  capabilities = ["update"]
}

path "auth/approle/role/spira-${env}-predict-hospital/secret-id-accessor/*" {
  capabilities = ["update"]
}
