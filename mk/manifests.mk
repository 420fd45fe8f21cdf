# GitOps manifests (spira/manifests, argocd/): checkov in its own virtualenv, because its dependency
# tree would fight the project's pins. Idempotent: the stamp is newer than this file once installed.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: manifests-deps manifests-check manifests-golden

$(CHECKOV_STAMP): mk/manifests.mk
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip==25.3
	$(CHECKOV_VENV)/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)
	@touch $@

manifests-deps: $(CHECKOV_STAMP)  ## tools the manifest checks need (checkov)

manifests-check: venv manifests-deps  ## render and check the Argo CD manifests (schemas, semantics, drift, checkov)
	$(BIN)/spira manifests check

manifests-golden: venv  ## re-render argocd/golden/ after an intended change
	$(BIN)/spira manifests golden

TEST_DEPS += manifests-deps
