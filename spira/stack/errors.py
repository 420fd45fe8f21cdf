"""Stack errors carry the service name and what to do, so the CLI can print one clear line."""

from __future__ import annotations


class StackError(RuntimeError):
    def __init__(self, service: str, problem: str, hint: str = "") -> None:
        self.service = service
        self.problem = problem
        self.hint = hint
        super().__init__(f"{service}: {problem}" + (f" ({hint})" if hint else ""))
