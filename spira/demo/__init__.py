"""`spira demo`: the whole delivery pipeline on the local stack (the README's main job)."""

from spira.demo.cli import demo

__all__ = ["demo"]
