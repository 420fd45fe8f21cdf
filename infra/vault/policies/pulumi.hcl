# `pulumi up` for ${env} once Vault is configured (role spira-${env}-pulumi, through OIDC): exactly what the
# program manages in Vault, so the root token can be revoked after the first configuration.
path "sys/auth" {
  capabilities = ["read"]
}

path "sys/auth/${jwt_mount}" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}

path "sys/auth/${oidc_mount}" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}

path "auth/${jwt_mount}/config" {
  capabilities = ["create", "read", "update"]
}

path "auth/${oidc_mount}/config" {
  capabilities = ["create", "read", "update"]
}

path "auth/${jwt_mount}/role/spira-${env}-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "auth/${oidc_mount}/role/spira-${env}-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "sys/mounts" {
  capabilities = ["read"]
}

path "sys/mounts/${kv_mount}" {
  capabilities = ["create", "read", "update"]
}

path "sys/mounts/${kv_mount}/tune" {
  capabilities = ["create", "read", "update"]
}

path "${kv_mount}/config" {
  capabilities = ["create", "read", "update"]
}

path "sys/policies/acl/spira-${env}-*" {
  capabilities = ["create", "read", "update", "delete"]
}

path "sys/audit" {
  capabilities = ["read", "sudo"]
}

path "sys/audit/file" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}

path "sys/audit/stdout" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}

# The object store's admin credential, which the program generates (spira/${env}/objectstore).
path "${kv_mount}/data/spira/${env}/objectstore" {
  capabilities = ["create", "read", "update"]
}

path "${kv_mount}/metadata/spira/${env}/objectstore" {
  capabilities = ["read", "delete"]
}

# MLflow's admin credential, which the program generates (spira/${env}/mlflow-admin).
path "${kv_mount}/data/spira/${env}/mlflow-admin" {
  capabilities = ["create", "read", "update"]
}

path "${kv_mount}/metadata/spira/${env}/mlflow-admin" {
  capabilities = ["read", "delete"]
}

# The NATS users' passwords, which the program generates for the servers (spira/${env}/nats-users).
path "${kv_mount}/data/spira/${env}/nats-users" {
  capabilities = ["create", "read", "update"]
}

path "${kv_mount}/metadata/spira/${env}/nats-users" {
  capabilities = ["read", "delete"]
}

# The candidate step's GitHub credential, from the stack's secret config (spira/${env}/candidate-dispatch).
path "${kv_mount}/data/spira/${env}/candidate-dispatch" {
  capabilities = ["create", "read", "update"]
}

path "${kv_mount}/metadata/spira/${env}/candidate-dispatch" {
  capabilities = ["read", "delete"]
}

# The provider works with a short-lived child token of the caller's.
path "auth/token/create" {
  capabilities = ["update"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# The clients of /predict (infra/vault/clients.py): the identity provider's issuer, the environment's
# signing key and token roles, and the hospitals' AppRole mount and role.
path "identity/oidc/config" {
  capabilities = ["read", "update"]
}

path "identity/oidc/key/spira-${env}-*" {
  capabilities = ["create", "read", "update", "delete"]
}

path "identity/oidc/role/spira-${env}-*" {
  capabilities = ["create", "read", "update", "delete"]
}

path "sys/auth/approle" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}

path "auth/approle/role/spira-${env}-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
