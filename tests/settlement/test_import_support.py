"""Shared builders for the import tests: files written on the fly and a small city."""
import csv
import datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from openpyxl import Workbook

from alliances.models import InstitutionLevel
from contracts.models import DiseaseCategory, InsuranceType, ServicePackage
from contracts.validators import build_resident_id
from tests import factories

D = Decimal


def write_xlsx(path, headers, rows):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def write_csv(path, headers, rows, encoding="utf-8-sig"):
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


def model_counts(*models):
    """Row and history-row counts: what must not move when nothing lands."""
    return [(model.objects.count(), model.history.count()) for model in models]


@pytest.fixture
def city(db):
    """Two counties; an alliance led by A with member B in 吴兴区; C alone in 南浔区."""
    wuxing = factories.region("330502", "吴兴区")
    nanxun = factories.region("330503", "南浔区")
    a = factories.institution(wuxing, InstitutionLevel.SECONDARY, code="H33050200001", name="吴兴区人民医院")
    b = factories.institution(wuxing, InstitutionLevel.GRASSROOTS, code="H33050200002", name="八里店卫生院")
    c = factories.institution(nanxun, InstitutionLevel.SECONDARY, code="H33050300001", name="南浔区人民医院")
    alliance = factories.alliance(lead=a, members=[b], code="YGT0001")
    p1_id = build_resident_id("330502", datetime.date(1970, 5, 17), 1, "M")
    p2_id = build_resident_id("330502", datetime.date(1950, 3, 2), 2, "F")
    p1 = factories.person(wuxing, name="张三")
    p1.id_number = p1_id
    p1.save()
    p2 = factories.person(wuxing, birth=datetime.date(1950, 3, 2), sex="F", insurance_type=InsuranceType.EMPLOYEE, name="李四")
    p2.id_number = p2_id
    p2.save()
    chronic = factories.disease("I10", DiseaseCategory.CHRONIC, "高血压")
    special2 = factories.disease("M05", DiseaseCategory.SPECIAL_CLASS2, "类风湿关节炎")
    package = ServicePackage.objects.create(code="PKG1", name="基础包", fee=D("120.00"))
    return SimpleNamespace(
        wuxing=wuxing, nanxun=nanxun, a=a, b=b, c=c, alliance=alliance, p1=p1, p2=p2, chronic=chronic,
        special2=special2, package=package,
    )
