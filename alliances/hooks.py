"""What alliances needs from the apps above it, filled by them at start-up.

Imports run one way (alliances ← contracts ← settlement): alliances never imports contracts' or
settlement's code, not even inside a function. Where its admin or services need something only a
higher app has (the spreadsheet pipeline and its jobs, the KPIs, the settled budget and assessment
rows), that app fills a named door here in its AppConfig.ready (settlement.apps), and alliances
calls the door. A door nobody filled is a deployment error, said in words.
"""
from django.core.exceptions import ImproperlyConfigured

_doors = {}


def fill(**doors):
    _doors.update(doors)


def door(name):
    try:
        return _doors[name]
    except KeyError:
        raise ImproperlyConfigured(f"alliances.hooks: “{name}” was never filled (settlement not installed?)") from None
