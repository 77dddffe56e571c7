"""The benefit engine's modifiers (SPEC §6.8), a policy of scheme `benefits`; defaults are FJ's figures."""
import dataclasses
from decimal import Decimal

# FJ: "跨统筹区…降低幅度不超过10个百分点" — a clause the benefit table's approval checks, so the
# parameter itself accepts more and the approval names the clause.
CROSS_COUNTY_LIMIT = Decimal("10")

# FJ: "一年内备案2次及以上的，取消当年度异地安置待遇" — a clause of the policy, not a tunable: the
# benefit engine, its pages and audit rule REL01 must all count the same filings.
REVOKING_FILINGS = 2


@dataclasses.dataclass(frozen=True)
class BenefitParams:
    referral_down_points: Decimal = dataclasses.field(
        default=Decimal("2"), metadata={"label": "下转患者报销比例提高（百分点）", "min": Decimal("0"), "max": Decimal("100")})
    cross_county_points: Decimal = dataclasses.field(
        default=Decimal("0"), metadata={"label": "市内跨县就医报销比例降低（百分点）", "min": Decimal("0"), "max": Decimal("100")})
    out_of_city_points: Decimal = dataclasses.field(
        default=Decimal("20"), metadata={"label": "市外未转诊就医报销比例降低（百分点）", "min": Decimal("0"), "max": Decimal("100")})
    referral_window_days: int = dataclasses.field(
        default=7, metadata={"label": "转诊后入院（就诊）衔接天数", "min": 0, "max": 365})
    out_referral_days: int = dataclasses.field(
        default=90, metadata={"label": "转外就医有效天数", "min": 0, "max": 366})
    tcm_primary_ratio: bool = dataclasses.field(
        default=False, metadata={"label": "中医机构门诊按基层比例"})
    city_code: str = dataclasses.field(
        default="", metadata={"label": "本市区划代码（空为唯一的上级区划）"})
    tuberculosis_prefixes: tuple[str, ...] = dataclasses.field(
        default=("A15", "A16"), metadata={"label": "肺结核病种编码前缀"})
