"""The registered audit rules, by code.

Apart from the rule modules so that what reads the registry without running a rule (recovery, which the
engine imports) does not import the rules and what they import (the benefit engine imports the engine).
settlement.apps imports the rules package, which registers every rule.
"""
_REGISTRY = {}


def register(rule_class):
    _REGISTRY[rule_class.code] = rule_class()
    return rule_class


def registered_rules():
    """code → rule (settlement.audit.rules.base.AuditRule), in code order."""
    return dict(sorted(_REGISTRY.items()))
