"""GitOps manifests: render the Argo CD overlays with kustomize and check what the clusters would run."""
