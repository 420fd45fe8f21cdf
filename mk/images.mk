# Images (ci/, `spira image`): podman configuration and store under ~/.cache/spira/podman plus the debootstrap base and the
# pod infra image, both cached in that store by recipe, so the image tests start from a warm base.
# Idempotent: `spira image setup` returns at once when the images exist; the stamp skips even that.
IMAGES_STAMP := .spira/podman/.setup-$(shell cat ci/base_image.py ci/podman.py | sha256sum | cut -c1-16)

.PHONY: images-setup

$(IMAGES_STAMP): ci/base_image.py ci/podman.py
	@mkdir -p .spira/podman
	PYTHONPATH=. $(BIN)/python -m ci.cli setup
	@touch $@

images-setup: sysdeps venv $(IMAGES_STAMP)  ## podman config, debootstrap base and infra images (cached)

# checkov for the workflow and Containerfile scans comes from manifests-deps (mk/manifests.mk).
TEST_DEPS += images-setup
# the demo builds, tests and plays the images too: the base images are part of its installation
DEMO_DEPS += images-setup
