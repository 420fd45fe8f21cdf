"""Workloads log in with a JWT and read their own secret from the real OpenBao; tokens are checked."""

from __future__ import annotations

import pytest

from infra.vault import layout
from spira.stack import StackInfo
from spira_core.settings import cached_service_secret, service_secret
from spira_core.vault import VaultError, VaultSecretReader, VaultSettings
from spira_core.vault.settings import vault_ca_path
from spira_core.vault.tokens import FileTokenSource, SignerTokenSource

pytestmark = pytest.mark.integration


def test_the_serving_workload_reads_its_secret_with_only_the_contract_variables(
    local_stack: StackInfo,
) -> None:
    secret = cached_service_secret(local_stack.service_env("serving"))
    assert set(layout.SERVICES["serving"].keys) <= set(secret.get())
    assert secret.status().version >= 1


def test_a_projected_token_file_logs_in_the_same_way_with_the_ca_beside_it(
    local_stack: StackInfo, tmp_path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(local_stack.service_jwt("training"))
    env = {k: v for k, v in local_stack.service_env("training").items() if not k.startswith("VAULT_JWT_")}
    env["VAULT_JWT_PATH"] = str(token_file)
    with pytest.raises(VaultError, match=f"the Vault CA {tmp_path / 'ca.crt'} does not exist"):
        service_secret("training", env)  # https trusts only the CA beside the token, never the system's
    vault_ca_path(token_file).write_bytes(local_stack.vault_ca.read_bytes())  # what vault-ca projects
    assert service_secret("training", env)["features_bucket"] == "spira-local-features"


def test_serving_is_denied_the_training_secret_and_another_environment(local_stack: StackInfo) -> None:
    env = local_stack.service_env("serving")
    for other in ("secret/spira/local/training", "secret/spira/staging/serving"):
        settings = VaultSettings.from_env({**env, "VAULT_SECRET_PATH": other})
        with pytest.raises(VaultError) as err:
            VaultSecretReader(settings, settings.token_source()).read()
        assert err.value.status == 403


@pytest.mark.parametrize("issuer,audience", [("someone-else", "vault"), ("spira-local-stack", "not-vault")])
def test_a_token_from_the_wrong_issuer_or_audience_is_refused(
    local_stack: StackInfo, issuer, audience
) -> None:
    settings = VaultSettings.from_env(local_stack.service_env("serving"))
    forged = SignerTokenSource(
        local_stack.signer.private_key_path,
        layout.SERVICES["serving"].subject,
        issuer=issuer,
        audience=audience,
    )
    with pytest.raises(VaultError) as err:
        VaultSecretReader(settings, forged).read()
    assert err.value.status in (400, 403)


def test_a_token_signed_by_another_key_is_refused(local_stack: StackInfo, tmp_path) -> None:
    from spira.stack.signer import LocalJwtSigner

    stranger = LocalJwtSigner(tmp_path / "other")
    stranger.ensure()
    token_file = tmp_path / "token"
    token_file.write_text(stranger.mint(layout.SERVICES["serving"].subject))
    settings = VaultSettings.from_env(local_stack.service_env("serving"))
    with pytest.raises(VaultError):
        VaultSecretReader(settings, FileTokenSource(token_file)).read()


def test_a_revoked_token_leads_to_one_fresh_login(local_stack: StackInfo) -> None:
    settings = VaultSettings.from_env(local_stack.service_env("serving"))
    reader = VaultSecretReader(settings, settings.token_source())
    reader.read()
    local_stack.vault_client().auth.token.revoke(reader.client_token)
    reader.read()
    assert reader.logins == 2


def test_every_read_is_in_the_audit_log(local_stack: StackInfo) -> None:
    cached_service_secret(local_stack.service_env("serving")).get()
    audit = (local_stack.home / "vault" / layout.AUDIT_LOG_FILE).read_text()
    assert "secret/data/spira/local/serving" in audit


def test_a_ca_that_did_not_sign_vaults_certificate_is_refused_naming_it(
    local_stack: StackInfo, tmp_path
) -> None:
    from spira.stack.tls import LocalCa

    token_file = tmp_path / "token"
    token_file.write_text(local_stack.service_jwt("serving"))
    LocalCa(tmp_path / "other", vault_ca_path(token_file)).ensure()  # another CA, where the pod looks
    env = {k: v for k, v in local_stack.service_env("serving").items() if not k.startswith("VAULT_JWT_")}
    settings = VaultSettings.from_env({**env, "VAULT_JWT_PATH": str(token_file)})
    with pytest.raises(VaultError, match=f"certificate that {tmp_path / 'ca.crt'} does not verify"):
        VaultSecretReader(settings, settings.token_source()).read()
