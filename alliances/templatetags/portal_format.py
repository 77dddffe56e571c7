"""`{% load portal_format %}` then `{{ value|money }}` / `{{ value|figure }}` (alliances/formatting.py)."""
from django import template

from alliances import formatting

register = template.Library()
register.filter("money", formatting.money)
register.filter("figure", formatting.figure)
