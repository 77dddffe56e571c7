from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from alliances.big_tables import BigTableAdmin, period_filter
from alliances.scoped_admin import ScopedAdmin, ScopedInline

from .models import (
    Contract, Disease, DiseaseRegistration, FamilyDoctorTeam, InsuredPerson, ServicePackage, ServicePackageItem,
)
from .validators import parse_resident_id


class PersonByCardField(forms.ModelChoiceField):
    """A person chosen by the full 18-digit ID number read from the card, never by a database id."""

    def __init__(self, **kwargs):
        kwargs.update(to_field_name="id_number", widget=forms.TextInput(attrs={"size": 20, "autocomplete": "off"}))
        kwargs.setdefault("help_text", "请输入参保人完整的18位身份证号")
        super().__init__(**kwargs)
        self.error_messages = {**self.error_messages, "invalid_choice": "未找到该身份证号对应的参保人，请核对完整的18位身份证号"}

    def prepare_value(self, value):
        # The form's initial value is the stored person's id: show its ID number instead.
        if isinstance(value, int):
            return InsuredPerson.objects.filter(pk=value).values_list("id_number", flat=True).first()
        return super().prepare_value(value)


class PersonByCardMixin:
    """Hospital staff reach a person they have no link with by the full ID number only (SPEC §1).

    A hospital sees the people it has signed, registered or been designated for. To sign someone
    new, staff read the ID card and type its number: the form looks the person up by that exact
    number, so no database id, partial number or name can bring up (or reveal anything about)
    a person the hospital has no link with.
    """

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "person" and self.user_scope(request).is_hospital:
            return PersonByCardField(
                queryset=InsuredPerson.objects.all(), label=db_field.verbose_name, required=not db_field.blank,
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(InsuredPerson)
class InsuredPersonAdmin(BigTableAdmin, ScopedAdmin):
    list_display = ("masked_id", "name", "sex", "birth_date", "insurance_type", "county", "status")
    list_filter = ("insurance_type", "status", "sex", "county")
    # A name is searched from its start (a surname, or the whole name), which the name index serves.
    search_shapes = {"id_number": "id_number", "county": "county__code", "name": "name__startswith"}
    search_help_text = "输入完整的身份证号、区划代码（6位）或姓名（可只输入姓氏）"
    sortable_by = ()
    readonly_fields = ("birth_date", "sex")
    autocomplete_fields = ("county",)
    list_select_related = ("county",)

    @admin.display(description="身份证号")
    def masked_id(self, obj):
        return obj.masked_id

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if self.user_scope(request).is_hospital and request.path.endswith("/autocomplete/"):
            try:
                card = parse_resident_id(search_term)
            except ValidationError:
                return results, may_have_duplicates
            results = results | InsuredPerson.objects.filter(id_number=card.number)
        return results, may_have_duplicates


@admin.register(Disease)
class DiseaseAdmin(ScopedAdmin):
    list_display = ("code", "name", "category", "main_operation")
    list_filter = ("category",)
    search_fields = ("code", "name")


@admin.register(DiseaseRegistration)
class DiseaseRegistrationAdmin(PersonByCardMixin, BigTableAdmin, ScopedAdmin):
    list_display = ("person", "disease", "filed_on", "ended_on", "approving_institution")
    list_filter = (period_filter("filed_on", "备案日期"), "disease__category")
    search_shapes = {"id_number": "person__id_number", "institution": "approving_institution__code",
                     "name": "person__name__startswith"}
    search_default = ("disease__code",)
    search_help_text = "输入完整的身份证号、机构编码（H+11位）、参保人姓名或病种编码"
    sortable_by = ()
    ordering = ("-pk",)  # newest filing first, by the primary key: no sort of the whole table
    autocomplete_fields = ("person", "disease", "approving_institution")
    list_select_related = ("person", "disease", "approving_institution")


class ServicePackageItemInline(ScopedInline, admin.TabularInline):
    model = ServicePackageItem
    extra = 0


@admin.register(ServicePackage)
class ServicePackageAdmin(ScopedAdmin):
    list_display = ("code", "name", "fee", "is_default")
    search_fields = ("code", "name")
    inlines = [ServicePackageItemInline]


@admin.register(FamilyDoctorTeam)
class FamilyDoctorTeamAdmin(ScopedAdmin):
    list_display = ("name", "institution", "lead_doctor")
    search_fields = ("name", "institution__code", "institution__name", "lead_doctor")
    autocomplete_fields = ("institution",)
    list_select_related = ("institution",)


@admin.register(Contract)
class ContractAdmin(PersonByCardMixin, BigTableAdmin, ScopedAdmin):
    list_display = ("person", "team", "institution", "package", "start", "end", "verified_on")
    list_filter = (period_filter("start", "签约开始"), ("verified_on", admin.EmptyFieldListFilter), "package")
    search_shapes = {"id_number": "person__id_number", "institution": "institution__code",
                     "county": "institution__county__code", "name": "person__name__startswith"}
    search_help_text = "输入完整的身份证号、机构编码（H+11位）、区划代码（6位）或参保人姓名"
    sortable_by = ()
    ordering = ("-pk",)  # newest contract first, by the primary key: no sort of the whole table
    autocomplete_fields = ("person", "team", "package")
    # A team shows its institution's name: joined here, not read once per row.
    list_select_related = ("person", "team__institution", "institution", "package")
    readonly_fields = ("verified_by",)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        # Only health-commission or bureau staff may verify a contract (SPEC §3).
        if self.user_scope(request).is_hospital:
            fields.append("verified_on")
        return fields

    def save_model(self, request, obj, form, change):
        if self.user_scope(request).is_hospital:
            # Whatever the form or a reverted history version carries, hospital staff never set or
            # restore a verification (SPEC §3): keep what is stored.
            stored = Contract.objects.filter(pk=obj.pk).values("verified_on", "verified_by").first() if obj.pk else None
            obj.verified_on = stored["verified_on"] if stored else None
            obj.verified_by_id = stored["verified_by"] if stored else None
        elif "verified_on" in form.changed_data:
            obj.verified_by = request.user if obj.verified_on else None
        super().save_model(request, obj, form, change)
