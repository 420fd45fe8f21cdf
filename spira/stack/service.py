"""What every server of the local stack has: its name and its folder under the stack's home."""

from __future__ import annotations

from spira.stack.config import StackConfig


class LocalService:
    name: str
    folder: str

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.home / self.folder
