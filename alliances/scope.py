"""Who may see and change what (SPEC §1): one restriction for reading, one check for writing.

Every scoped model answers `scope_filter(scope)` with a Q object; `restrict(queryset, user)`
applies it. Admin changelists, change views, autocompletes, exports, uploads and reports all
go through `restrict`, so a scope rule is written once.

Writing is checked on the row itself, with the values it is about to be saved with:
`write_refusal(obj, user)` answers why the user may not write it (or None). It is the read scope
evaluated on the new values, minus what is public to read but owned by the city bureau (city-wide
rows, city-wide policies), plus the row's own lock (`locked_reason`, e.g. approved).
"""
from dataclasses import dataclass, field

from django.core.exceptions import ObjectDoesNotExist
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
    # A county or health-commission user's institutions (those of its counties): rows scoped through an
    # institution's county are filtered by these keys, so the planner reads the rows' own institution
    # column against a literal list (and its statistics) instead of guessing at a join.
    region_institution_ids: frozenset = field(default_factory=frozenset)

    @property
    def is_regional(self):
        return self.role in Role.REGIONAL

    @property
    def is_hospital(self):
        return self.role == Role.HOSPITAL

    @property
    def read_only(self):
        return self.role == Role.AUDITOR

    @property
    def writes_all(self):
        """The city bureau (and superusers) write city-wide; the auditor sees all but writes nothing."""
        return self.sees_all and self.role == Role.CITY

    @property
    def institutions_seen(self):
        """The ids of the institutions whose rows this scope reads, or None when it reads every one."""
        if self.sees_all:
            return None
        if self.is_regional:
            return self.region_institution_ids
        if self.is_hospital:
            return self.institution_ids
        return frozenset()

    def unit_code_allowed(self, code):
        if self.sees_all:
            return True
        return code in self.unit_codes or any(code.startswith(f"{region}-") for region in self.region_codes)

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
        institutions = list(Institution.objects.filter(county_id__in=region_ids).values_list("pk", "code"))
        return Scope(
            role=profile.role,
            region_ids=frozenset(region_ids),
            region_codes=frozenset(region_codes),
            unit_codes=frozenset({code for _, code in institutions} | alliance_codes),
            region_institution_ids=frozenset(pk for pk, _ in institutions),
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


OUT_OF_WRITE_SCOPE = "不在您的数据范围内：只能新增或修改本县区（医疗机构为本机构，牵头医院为本医共体）的数据"
CITY_OWNED = "全市统一的数据由市医保局维护，县区只能提出草稿（测算）"
READ_ONLY = "审计用户只能查看，不能修改"


def write_refusal(obj, user):
    """Why `user` may not create, change or delete `obj` as it now stands, in Chinese; None if allowed.

    Called with the row's new values (after a form or an import filled them in) and, for changes and
    deletes, with the stored row too, so a row can neither be reached nor moved out of scope.
    """
    scope = scope_for(user)
    if scope.read_only:
        return READ_ONLY
    if scope.role is None:
        return OUT_OF_WRITE_SCOPE
    if isinstance(obj, ScopedModel):
        locked = locked_reason(obj)
        if locked:
            return locked
        if not scope.writes_all:
            return obj.write_scope_refusal(scope)
    return None


def locked_reason(obj):
    """Why `obj` is immutable for everyone (approved, or part of an approved run); None if it is not."""
    hook = getattr(obj, "locked_reason", None)
    return hook() if hook is not None else None


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

    # A model may also define `locked_reason()` (why the row is immutable for everyone, e.g. approved)
    # and `is_draft_proposal()` (a city-wide row a county may still write: its own draft 测算).

    def write_scope_refusal(self, scope: Scope):
        """The read scope evaluated on this row's current values, for a user who is not the city bureau."""
        if self.scope_region is None and self.scope_institution is None:
            proposal = getattr(self, "is_draft_proposal", None)
            if scope.role == Role.COUNTY and proposal is not None and proposal():
                return None
            return CITY_OWNED
        if scope.is_regional and self.scope_region:
            return None if path_value(self, self.scope_region) in scope.region_ids else OUT_OF_WRITE_SCOPE
        if scope.is_hospital and self.scope_institution:
            return None if path_value(self, self.scope_institution) in scope.institution_ids else OUT_OF_WRITE_SCOPE
        return OUT_OF_WRITE_SCOPE

    @classmethod
    def scope_filter(cls, scope: Scope) -> Q:
        if scope.sees_all:
            return Q()
        if cls.scope_region is None and cls.scope_institution is None:
            return Q()
        if scope.is_regional and cls.scope_region:
            if cls.scope_institution and cls.scope_region == f"{cls.scope_institution}__county":
                # The same rows as `<institution>__county__in`, without the join (a county's claims
                # page 500: 7 s through the join, 0.05 s by the list, at city scale).
                return Q(**{f"{cls.scope_institution}__in": sorted(scope.region_institution_ids)})
            return Q(**{f"{cls.scope_region}__in": scope.region_ids})
        if scope.is_hospital and cls.scope_institution:
            return Q(**{f"{cls.scope_institution}__in": scope.institution_ids})
        return Q(pk__in=[])


def path_value(obj, path):
    """The primary key at the end of a `scope_region`/`scope_institution` lookup path on an instance.

    Follows forward foreign keys only (reading `<name>_id` at the last step, so an unsaved row is
    checked without a query); a path through a reverse relation cannot name one owner, so it answers
    None and the write is refused.
    """
    if path == "pk":
        return obj.pk
    *hops, last = path.split("__")
    current = obj
    for hop in hops:
        field = _forward_fk(current, hop)
        if field is None:
            return None
        try:
            current = getattr(current, hop)
        except ObjectDoesNotExist:
            return None
        if current is None:
            return None
    field = _forward_fk(current, last)
    if field is None:
        return None
    return getattr(current, field.attname)


def _forward_fk(obj, name):
    try:
        field = obj._meta.get_field(name)
    except Exception:
        return None
    if not field.concrete or not (field.many_to_one or field.one_to_one):
        return None
    return field
