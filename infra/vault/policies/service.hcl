# ${service} in ${env}: read its own secret and nothing else.
path "${kv_mount}/data/spira/${env}/${service}" {
  capabilities = ["read"]
}

path "${kv_mount}/metadata/spira/${env}/${service}" {
  capabilities = ["read"]
}
