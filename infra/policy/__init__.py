"""CrossGuard policy pack for the SPIRA stacks (rules in rules.py, the pack in __main__.py)."""
