"""SPIRA Platform operator CLI and local tooling (the `spira` command)."""
