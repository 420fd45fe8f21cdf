"""CI and release tooling: the single build, ephemeral tests by digest, promotion checks."""
