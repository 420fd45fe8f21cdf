"""The single definition of SPIRA's Vault layout: secret paths, policies and JWT roles.

Used by the Pulumi program (pulumi-vault, clusters) and by the local stack bootstrap (hvac, OpenBao).
Pure data and text rendering: no I/O beyond reading the policy templates shipped beside this module.
"""
