"""Pulumi program for the staging and production clusters, plus the shared cluster contracts."""
