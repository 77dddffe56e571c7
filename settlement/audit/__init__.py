"""Supervision (SPEC §9): audit-rule plug-ins, findings, review."""
