from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from alliances.hooks import door
from alliances.models import Institution, Region
from alliances.scope import OUT_OF_WRITE_SCOPE, ScopedModel

from .validators import parse_resident_id, validate_resident_id


class InsuranceType(models.TextChoices):
    EMPLOYEE = "职工", "职工"
    RESIDENT = "居民", "居民"


class PersonStatus(models.TextChoices):
    ACTIVE = "参保", "参保"
    SUSPENDED = "暂停", "暂停"
    ENDED = "终止", "终止"


class Sex(models.TextChoices):
    MALE = "M", "男"
    FEMALE = "F", "女"


class InsuredPerson(ScopedModel, models.Model):
    """参保人. Birth date and sex are read from the ID number, never typed twice."""

    id_number = models.CharField("身份证号", max_length=18, unique=True, validators=[validate_resident_id])
    name = models.CharField("姓名", max_length=50)
    birth_date = models.DateField("出生日期", editable=False)
    sex = models.CharField("性别", max_length=1, choices=Sex.choices, editable=False)
    insurance_type = models.CharField("险种", max_length=2, choices=InsuranceType.choices)
    county = models.ForeignKey(Region, verbose_name="参保县区", on_delete=models.PROTECT, related_name="insured")
    status = models.CharField("参保状态", max_length=2, choices=PersonStatus.choices, default=PersonStatus.ACTIVE)
    history = HistoricalRecords()

    scope_region = "county"

    class Meta:
        verbose_name = "参保人"
        verbose_name_plural = verbose_name
        ordering = ["id_number"]
        # Name search is from the start of the name (a surname, a whole name): LIKE 'x%' on this index.
        # A scoped list walks the ID numbers in order and tests each person's id against its scope: with
        # the id in the index the walk reads no heap (a hospital's page 500: 168 ms → 30 ms at city scale).
        indexes = [models.Index(fields=["name"], name="person_name_prefix", opclasses=["varchar_pattern_ops"]),
                   models.Index(fields=["id_number"], include=["id"], name="person_id_number_covering")]

    def __str__(self):
        return f"{self.name}（{self.masked_id}）"

    @property
    def masked_id(self):
        return f"{self.id_number[:6]}********{self.id_number[-4:]}" if self.id_number else ""

    def derive_from_id(self):
        parsed = parse_resident_id(self.id_number)
        self.id_number = parsed.number
        self.birth_date = parsed.birth_date
        self.sex = parsed.sex

    def clean_fields(self, exclude=None):
        # The field's validator already explains a bad number; clean() must not say it twice.
        self._id_number_checked = "id_number" not in (exclude or ())
        super().clean_fields(exclude=exclude)

    def clean(self):
        try:
            self.derive_from_id()
        except ValidationError as exc:
            if not getattr(self, "_id_number_checked", False):
                raise ValidationError({"id_number": exc.messages}) from None

    def save(self, *args, **kwargs):
        # Keep the derived columns consistent however the row is saved.
        self.derive_from_id()
        super().save(*args, **kwargs)

    def write_scope_refusal(self, scope):
        if scope.is_hospital:
            # A hospital registers people insured in the counties where it (or its alliance) works,
            # as its uploads may (SPEC §4).
            counties = Institution.objects.filter(pk__in=scope.institution_ids).values_list("county_id", flat=True)
            return None if self.county_id in set(counties) else OUT_OF_WRITE_SCOPE
        return super().write_scope_refusal(scope)

    @classmethod
    def scope_filter(cls, scope):
        if scope.is_hospital:
            # A hospital sees the people it has signed, registered or been designated for (the
            # designations are settlement's: settlement.doors.designated_persons, via alliances.hooks).
            ids = scope.institution_ids
            return (
                Q(pk__in=Contract.objects.filter(institution_id__in=ids).values("person_id"))
                | Q(pk__in=DiseaseRegistration.objects.filter(approving_institution_id__in=ids).values("person_id"))
                | Q(pk__in=door("designated_persons")(ids))
            )
        return super().scope_filter(scope)


class DiseaseCategory(models.TextChoices):
    CHRONIC = "慢性病", "慢性病"
    SPECIAL = "特殊病", "特殊病"
    SPECIAL_CLASS1 = "一类门特", "一类门特"
    SPECIAL_CLASS2 = "二类门特", "二类门特"
    PER_DISEASE = "按病种付费", "按病种付费"
    BED_DAY = "床日", "床日"


class Disease(ScopedModel, models.Model):
    """病种目录 (ICD-10 or local code). City-wide reference data."""

    code = models.CharField("病种编码", max_length=30, unique=True)
    name = models.CharField("病种名称", max_length=100)
    category = models.CharField("病种类别", max_length=5, choices=DiseaseCategory.choices)
    main_operation = models.CharField("主手术编码", max_length=30, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "病种"
        verbose_name_plural = "病种目录"
        ordering = ["code"]

    def __str__(self):
        return f"{self.name}（{self.code}）"


class DiseaseRegistration(ScopedModel, models.Model):
    """慢特病备案: counts from its filing month (SPEC §6.1)."""

    person = models.ForeignKey(InsuredPerson, verbose_name="参保人", on_delete=models.PROTECT, related_name="registrations")
    disease = models.ForeignKey(Disease, verbose_name="病种", on_delete=models.PROTECT, related_name="registrations")
    filed_on = models.DateField("备案日期")
    ended_on = models.DateField("终止日期", null=True, blank=True)
    # Indexed with the person (Meta): a hospital's scope of persons reads the pairs from the index alone.
    approving_institution = models.ForeignKey(
        Institution, verbose_name="备案机构", null=True, blank=True, on_delete=models.PROTECT,
        related_name="registrations", db_index=False,
    )
    history = HistoricalRecords()

    scope_region = "person__county"
    scope_institution = "approving_institution"

    class Meta:
        verbose_name = "慢特病备案"
        verbose_name_plural = verbose_name
        ordering = ["-filed_on"]
        constraints = [
            models.UniqueConstraint(fields=["person", "disease", "filed_on"], name="registration_business_key"),
            models.CheckConstraint(
                condition=Q(ended_on__isnull=True) | Q(ended_on__gte=models.F("filed_on")),
                name="registration_dates_in_order",
            ),
        ]
        indexes = [models.Index(fields=["approving_institution"], include=["person"], name="registration_inst_persons")]

    def __str__(self):
        return f"{self.person.name} · {self.disease.name}"

    def clean(self):
        if self.ended_on and self.filed_on and self.ended_on < self.filed_on:
            raise ValidationError({"ended_on": "终止日期不能早于备案日期"})


class ServicePackage(ScopedModel, models.Model):
    """家庭医生签约服务包 (PZH annex) with its fee per person-year."""

    code = models.CharField("服务包编码", max_length=30, unique=True)
    name = models.CharField("服务包名称", max_length=100)
    fee = models.DecimalField(
        "签约服务费（元/人·年）", max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))],
    )
    is_default = models.BooleanField("默认服务包", default=False, help_text="未指定服务包的签约按默认服务包计费")
    history = HistoricalRecords()

    class Meta:
        verbose_name = "服务包"
        verbose_name_plural = verbose_name
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_package"),
        ]

    def __str__(self):
        return f"{self.name}（{self.fee}元/人·年）"

    @classmethod
    def default(cls):
        return cls.objects.filter(is_default=True).first()


class ServicePackageItem(models.Model):
    package = models.ForeignKey(ServicePackage, verbose_name="服务包", on_delete=models.CASCADE, related_name="items")
    name = models.CharField("服务项目", max_length=100)
    content = models.TextField("服务内容", blank=True)
    times_per_year = models.PositiveSmallIntegerField("频次（次/年）", default=1)
    price = models.DecimalField("价格（元）", max_digits=10, decimal_places=2, default=Decimal("0"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = "服务项目"
        verbose_name_plural = verbose_name

    def __str__(self):
        return self.name


class FamilyDoctorTeam(ScopedModel, models.Model):
    institution = models.ForeignKey(Institution, verbose_name="签约机构", on_delete=models.PROTECT, related_name="teams")
    name = models.CharField("团队名称", max_length=100)
    lead_doctor = models.CharField("团队长", max_length=50, blank=True)
    history = HistoricalRecords()

    scope_region = "institution__county"
    scope_institution = "institution"

    class Meta:
        verbose_name = "家庭医生团队"
        verbose_name_plural = verbose_name
        ordering = ["institution__code", "name"]
        constraints = [models.UniqueConstraint(fields=["institution", "name"], name="team_name_per_institution")]

    def __str__(self):
        return f"{self.name}（{self.institution.name}）"


class Contract(ScopedModel, models.Model):
    """家庭医生签约. Counts only once verified by health-commission staff (SPEC §3)."""

    person = models.ForeignKey(InsuredPerson, verbose_name="参保人", on_delete=models.PROTECT, related_name="contracts")
    team = models.ForeignKey(FamilyDoctorTeam, verbose_name="家庭医生团队", on_delete=models.PROTECT, related_name="contracts")
    # Denormalised from the team so that settlement aggregates join one table less.
    # Indexed with the person (Meta): a hospital's scope of persons (InsuredPerson.scope_filter) reads
    # its contracts' persons from the index alone (a lead hospital's persons page: 0.2 s → 0.04 s).
    institution = models.ForeignKey(
        Institution, verbose_name="签约机构", on_delete=models.PROTECT, related_name="contracts", editable=False,
        db_index=False,
    )
    package = models.ForeignKey(
        ServicePackage, verbose_name="服务包", null=True, blank=True, on_delete=models.PROTECT,
        related_name="contracts", help_text="不填则按默认服务包",
    )
    start = models.DateField("签约日期")
    end = models.DateField("解约日期", null=True, blank=True)
    verified_on = models.DateField("核实日期", null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="核实人", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    history = HistoricalRecords()

    scope_region = "institution__county"
    scope_institution = "institution"

    class Meta:
        verbose_name = "家庭医生签约"
        verbose_name_plural = verbose_name
        ordering = ["-start"]
        constraints = [
            models.UniqueConstraint(fields=["person", "start"], name="contract_business_key"),
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gte=models.F("start")), name="contract_dates_in_order",
            ),
        ]
        indexes = [
            models.Index(fields=["institution", "start"]),
            models.Index(fields=["institution"], include=["person"], name="contract_inst_persons"),
        ]

    def __str__(self):
        return f"{self.person.name} · {self.team.name}（{self.start}）"

    @property
    def is_verified(self):
        return self.verified_on is not None

    def overlapping(self):
        """The person's other contracts that share at least one day with this one."""
        others = Contract.objects.filter(person_id=self.person_id).exclude(pk=self.pk)
        if self.end:
            others = others.filter(start__lte=self.end)
        return others.filter(Q(end__isnull=True) | Q(end__gte=self.start))

    def clean(self):
        if self.team_id:
            self.institution_id = self.team.institution_id
        if self.end and self.start and self.end < self.start:
            raise ValidationError({"end": "解约日期不能早于签约日期"})
        if self.verified_on and self.start and self.verified_on < self.start:
            raise ValidationError({"verified_on": "核实日期不能早于签约日期"})
        if self.person_id and self.start:
            clash = self.overlapping().select_related("team__institution").first()
            if clash:
                end = clash.end.isoformat() if clash.end else "至今"
                raise ValidationError(
                    f"该参保人在{clash.start.isoformat()}至{end}已与{clash.team.institution.name}签约，"
                    "同一时间只能有一份有效签约"
                )

    def save(self, *args, **kwargs):
        if self.team_id:
            self.institution_id = self.team.institution_id
        super().save(*args, **kwargs)
