"""Operator secrets: seed, status and rotation of each environment's Vault secrets."""
