"""What settlement fills into alliances.hooks (settlement.apps): the few things the lower apps'
admin and services need from settlement, so that they never import it."""
from settlement.models import Assessment, Budget, Scheme, SpecialDesignation


def save_alliance_budget(year, alliance_code, insurance_type, amount):
    """The settled budget B of an alliance and insurance type (SPEC §6.4), from its budget plan."""
    Budget.objects.update_or_create(
        year=year, scheme=Scheme.ALLIANCE_BUDGET, unit_code=alliance_code, insurance_type=insurance_type,
        defaults={"amount": amount},
    )


def save_assessment(year, unit_code, score):
    """A unit's assessment score of the year, as the capitation and alliance settlements read it."""
    Assessment.objects.update_or_create(year=year, unit_code=unit_code, defaults={"score": score})


def designated_persons(institution_ids):
    """Persons designated to one of the institutions for special outpatient care: a hospital sees them."""
    return SpecialDesignation.objects.filter(institution_id__in=institution_ids).values("person_id")
