"""The pipeline's stages: features → train → evaluate → publish, each content-addressed and resumable."""
