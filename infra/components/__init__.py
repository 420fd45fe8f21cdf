"""One ComponentResource per module. Cloud-specific ones live in a package per cloud (aws/); the rest only
talk to Kubernetes and Vault, through the `Platform` a cloud package returns."""
