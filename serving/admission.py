"""The request-body budget: shared with the intake API, it lives in spira_core.admission."""

from spira_core.admission import BodyBudget

__all__ = ["BodyBudget"]
