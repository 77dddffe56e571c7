"""Monthly pre-aggregates of claims and cases behind the KPI dashboard (issue 13, SPEC §6.4).

models.py holds the figures, services.py rebuilds them set-based, selectors.py reads them in the
shapes alliances.kpis expects (registered as its aggregated source in settlement.apps).
"""
