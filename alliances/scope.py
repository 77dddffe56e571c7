"""Who may see what (SPEC §1): one restriction used by every query a user can reach.

Every scoped model answers `scope_filter(scope)` with a Q object; `restrict(queryset, user)`
applies it. Admin changelists, change views, autocompletes, exports, uploads and reports all
go through `restrict`, so a scope rule is written once.
"""
from dataclasses import dataclass, field

from django.db.models import Q


class Role:
    CITY = "city"
    COUNTY = "county"
    HEALTH = "health"
    HOSPITAL = "hospital"
    AUDITOR = "auditor"

    CHOICES = [
        (CITY, "市医保局"),
        (COUNTY, "县区医保局"),
        (HEALTH, "卫健委"),
        (HOSPITAL, "医疗机构财务"),
        (AUDITOR, "审计"),
    ]
    LABELS = dict(CHOICES)
    CITY_WIDE = {CITY, AUDITOR}
    REGIONAL = {COUNTY, HEALTH}


@dataclass(frozen=True)
class Scope:
    role: str | None
    sees_all: bool = False
    region_ids: frozenset = field(default_factory=frozenset)
    institution_ids: frozenset = field(default_factory=frozenset)
    alliance_ids: frozenset = field(default_factory=frozenset)
    # Codes a budget, assessment or payment row may name for this user (SPEC §4 单位编码).
    unit_codes: frozenset = field(default_factory=frozenset)
    region_codes: frozenset = field(default_factory=frozenset)

    @property
    def is_regional(self):
        return self.role in Role.REGIONAL

    @property
    def is_hospital(self):
        return self.role == Role.HOSPITAL

    @property
    def read_only(self):
        return self.role == Role.AUDITOR

    def unit_code_q(self, field_name="unit_code"):
        """Rows keyed by a 单位编码: alliance, institution or DRG pool `<区划>-<等级段>`."""
        if self.sees_all:
            return Q()
        q = Q(**{f"{field_name}__in": self.unit_codes})
        for code in self.region_codes:
            q |= Q(**{f"{field_name}__startswith": f"{code}-"})
        return q


NOTHING = Scope(role=None)
EVERYTHING = Scope(role=Role.CITY, sees_all=True)


def scope_for(user) -> Scope:
    """The user's scope, computed once per user object."""
    if user is None or not user.is_authenticated or not user.is_active:
        return NOTHING
    cached = getattr(user, "_portal_scope", None)
    if cached is not None:
        return cached
    scope = _compute_scope(user)
    user._portal_scope = scope
    return scope


def _compute_scope(user) -> Scope:
    from alliances.models import Alliance, Institution, Membership, UserScope

    if user.is_superuser:
        return EVERYTHING
    try:
        profile = UserScope.objects.select_related("region", "institution").get(user=user)
    except UserScope.DoesNotExist:
        return NOTHING
    if profile.role in Role.CITY_WIDE:
        return Scope(role=profile.role, sees_all=True)
    if profile.role in Role.REGIONAL:
        if profile.region_id is None:
            return NOTHING
        region_ids = {profile.region_id}
        region_codes = {profile.region.code}
        alliance_codes = set(
            Alliance.objects.filter(county_id__in=region_ids).values_list("code", flat=True)
        )
        institution_codes = set(
            Institution.objects.filter(county_id__in=region_ids).values_list("code", flat=True)
        )
        return Scope(
            role=profile.role,
            region_ids=frozenset(region_ids),
            region_codes=frozenset(region_codes),
            unit_codes=frozenset(institution_codes | alliance_codes),
        )
    if profile.role == Role.HOSPITAL:
        if profile.institution_id is None:
            return NOTHING
        own = profile.institution
        led = list(Alliance.objects.filter(lead_hospital_id=own.pk).values_list("pk", "code"))
        led_ids = {pk for pk, _ in led}
        member_rows = Membership.objects.filter(alliance_id__in=led_ids).values_list(
            "institution_id", "institution__code"
        )
        institution_ids = {own.pk} | {pk for pk, _ in member_rows}
        institution_codes = {own.code} | {code for _, code in member_rows}
        alliance_ids = led_ids | set(
            Membership.objects.filter(institution_id=own.pk).values_list("alliance_id", flat=True)
        )
        return Scope(
            role=profile.role,
            institution_ids=frozenset(institution_ids),
            alliance_ids=frozenset(alliance_ids),
            unit_codes=frozenset(institution_codes | {code for _, code in led}),
        )
    return NOTHING


def restrict(queryset, user):
    """Limit any queryset of a scoped model to what `user` may see."""
    scope = scope_for(user)
    if scope.sees_all:
        return queryset
    if scope.role is None:
        return queryset.none()
    return queryset.filter(queryset.model.scope_filter(scope))


class ScopedModel:
    """Mixin declaring where a model's rows sit in the region/institution tree.

    `scope_region` is the lookup path to the county (Region), `scope_institution` the path to
    the institution. A model with neither is city-wide reference data everyone may read.
    """

    scope_region: str | None = None
    scope_institution: str | None = None

    @classmethod
    def scope_filter(cls, scope: Scope) -> Q:
        if scope.sees_all:
            return Q()
        if cls.scope_region is None and cls.scope_institution is None:
            return Q()
        if scope.is_regional and cls.scope_region:
            return Q(**{f"{cls.scope_region}__in": scope.region_ids})
        if scope.is_hospital and cls.scope_institution:
            return Q(**{f"{cls.scope_institution}__in": scope.institution_ids})
        return Q(pk__in=[])
