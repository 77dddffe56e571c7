"""Static reference content of the synthetic Huzhou-like demo city (names, codes, price levels).

Everything here is data, not policy: the figures only make the demo plausible. Money is in 分
(integer) so that millions of rows can be generated without floats; writers turn it into Decimal.
"""
CITY = ("330500", "湖州市")

# code, name, share of the insured population, towns (街道 → 社区卫生服务中心, 镇/乡 → 乡镇卫生院)
COUNTIES = [
    ("330502", "吴兴区", 27, [
        "月河街道", "朝阳街道", "爱山街道", "飞英街道", "龙泉街道", "康山街道", "环渚街道",
        "织里镇", "八里店镇", "妙西镇", "埭溪镇", "东林镇", "道场乡",
    ]),
    ("330503", "南浔区", 20, [
        "南浔镇", "双林镇", "练市镇", "善琏镇", "旧馆镇", "菱湖镇", "和孚镇", "千金镇", "石淙镇",
        "东迁街道", "南林街道", "练溪街道",
    ]),
    ("330521", "德清县", 17, [
        "武康街道", "舞阳街道", "阜溪街道", "下渚湖街道", "乾元镇", "新市镇", "洛舍镇", "钟管镇",
        "禹越镇", "新安镇", "雷甸镇", "莫干山镇",
    ]),
    ("330522", "长兴县", 21, [
        "雉城街道", "画溪街道", "太湖街道", "龙山街道", "洪桥镇", "李家巷镇", "夹浦镇", "和平镇",
        "林城镇", "虹星桥镇", "泗安镇", "煤山镇", "水口乡", "小浦镇", "吕山乡",
    ]),
    ("330523", "安吉县", 15, [
        "递铺街道", "昌硕街道", "灵峰街道", "孝丰镇", "天荒坪镇", "梅溪镇", "鄣吴镇", "杭垓镇",
        "报福镇", "天子湖镇", "溪龙乡", "上墅乡", "山川乡",
    ]),
]

# Hospitals of each county: (level, kind, public, name, may lead an alliance, specialty tag).
# Specialty tags steer bed-day cases: "psy" psychiatric, "rehab" rehabilitation, "mch" maternity.
_WUXING_HOSPITALS = [
    ("三级", "综合", True, "湖州市中心医院", True, ""),
    ("三级", "综合", True, "湖州市第一人民医院", True, ""),
    ("三级", "中医", True, "湖州市中医院", True, ""),
    ("二级", "综合", True, "吴兴区人民医院", True, ""),
    ("三级", "专科", True, "湖州市第三人民医院", False, "psy"),
    ("二级", "专科", True, "湖州市妇幼保健院", False, "mch"),
    ("二级", "专科", False, "湖州康复医院", False, "rehab"),
    ("二级", "综合", False, "湖州济康医院", False, ""),
]


def county_hospitals(county_name):
    if county_name == "吴兴区":
        return list(_WUXING_HOSPITALS)
    top = "三级" if county_name in ("长兴县", "德清县", "安吉县") else "二级"
    return [
        (top, "综合", True, f"{county_name}人民医院", True, ""),
        ("二级", "中医", True, f"{county_name}中医院", True, ""),
        ("二级", "综合", True, f"{county_name}第二人民医院", True, ""),
        ("二级", "综合", True, f"{county_name}第三人民医院", True, ""),
        ("二级", "专科", True, f"{county_name}妇幼保健院", False, "mch"),
        ("二级", "专科", True, f"{county_name}精神卫生中心", False, "psy"),
        ("二级", "专科", False, f"{county_name}康复医院", False, "rehab"),
    ]


# Private first-level hospitals and clinics: (name suffix, kind).
PRIVATE_PRIMARY = [
    ("仁济医院", "综合"), ("博爱医院", "综合"), ("口腔医院", "专科"), ("眼科医院", "专科"),
    ("康宁医院", "综合"), ("中医门诊部", "中医"), ("华康医院", "综合"), ("骨伤医院", "专科"),
    ("安康医院", "综合"), ("国医堂", "中医"), ("妇产医院", "专科"), ("老年病医院", "综合"),
]

VILLAGE_FIRST = "东西南北新长丰桥塘山湖溪竹梅荷杨柳石金银马龙凤潘陈沈徐钱许周"
VILLAGE_SECOND = ["安", "丰", "桥", "港", "塘", "浜", "湾", "庄", "圩", "墩", "溪", "林"]

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬斌宇浩凯健俊帆帅旭宁晨阳欣悦梓涵子轩雨萱浩然一诺思远嘉怡佳琪文博建国建华志强海燕春梅冬梅秋菊凤英金凤"

# Disease catalogue: code, name, category, main operation (按病种付费 only).
CHRONIC = [
    ("I10", "高血压", "慢性病"),
    ("E11", "2型糖尿病", "慢性病"),
    ("I25", "冠心病", "慢性病"),
    ("J44", "慢性阻塞性肺疾病", "慢性病"),
    ("I69", "脑血管病后遗症", "慢性病"),
    ("E03", "甲状腺功能减退症", "慢性病"),
]
SPECIAL = [
    ("F20", "精神分裂症", "特殊病"),
    ("A15", "肺结核", "特殊病"),
    ("G20", "帕金森病", "特殊病"),
]
SPECIAL_CLASS1 = [
    ("I50", "慢性心力衰竭", "一类门特"),
    ("M05", "类风湿关节炎", "一类门特"),
    ("K74", "肝硬化", "一类门特"),
    ("M32", "系统性红斑狼疮", "一类门特"),
]
# 二类门特 with (visits per year low, high, cost per visit in 分 low, high): drives the claims.
SPECIAL_CLASS2 = [
    ("N18", "尿毒症透析", "二类门特", (100, 150, 38_000, 52_000), 4_200_000),
    ("Z51.1", "恶性肿瘤门诊放化疗", "二类门特", (10, 24, 250_000, 1_200_000), 2_600_000),
    ("Z94", "器官移植术后抗排异治疗", "二类门特", (12, 14, 180_000, 320_000), 3_000_000),
    ("D66", "血友病", "二类门特", (10, 20, 300_000, 900_000), 1_200_000),
]
# Per-disease pilot diseases: code, name, main operation, standard per level in 分.
PER_DISEASE = [
    ("K35.8", "急性阑尾炎（腹腔镜阑尾切除术）", "47.01", {"三级": 980_000, "二级": 820_000}),
    ("K80.2", "胆囊结石（腹腔镜胆囊切除术）", "51.23", {"三级": 1_350_000, "二级": 1_120_000}),
    ("H25.9", "老年性白内障（超声乳化摘除+人工晶体植入）", "13.41", {"三级": 680_000, "二级": 560_000, "一级": 480_000}),
    ("N40", "前列腺增生（经尿道前列腺电切术）", "60.29", {"三级": 1_450_000, "二级": 1_200_000}),
    ("K40.9", "腹股沟疝（疝修补术）", "53.02", {"三级": 780_000, "二级": 650_000, "一级": 560_000}),
]
BED_DAY_DISEASES = [
    ("F29", "精神障碍住院（床日）", "床日", "精神"),
    ("Z51.5", "安宁疗护（床日）", "床日", "安宁疗护"),
    ("Z50", "康复治疗（床日）", "床日", "康复"),
]
# Bed-day quota in 分 per day by level.
BED_DAY_QUOTAS = {
    "精神": {"三级": 32_000, "二级": 28_000, "一级": 24_000, "基层": 20_000},
    "安宁疗护": {"三级": 52_000, "二级": 45_000, "一级": 38_000, "基层": 32_000},
    "康复": {"三级": 48_000, "二级": 42_000, "一级": 36_000, "基层": 30_000},
}

# DRG groups: code, name, average cost (元), mean stay, principal diagnosis, main operation,
# lowest level treating it, same price, TCM support, bed-day points.
DRG_GROUPS = [
    ("ES21", "呼吸系统感染/炎症，伴严重并发症或合并症", 12_500, 11, "J15.9", "", "二级", False, False, None),
    ("ES23", "呼吸系统感染/炎症，伴一般并发症或合并症", 6_800, 8, "J18.9", "", "基层", False, False, None),
    ("ES25", "呼吸系统感染/炎症，不伴并发症或合并症", 4_800, 6, "J18.0", "", "基层", False, False, None),
    ("ET23", "慢性气道阻塞病，伴一般并发症或合并症", 8_200, 9, "J44.1", "", "一级", False, False, None),
    ("FR23", "心力衰竭、休克，伴一般并发症或合并症", 9_800, 9, "I50.0", "", "二级", False, False, None),
    ("FM19", "经皮冠状动脉支架植入", 38_000, 7, "I21.0", "36.06", "三级", False, False, None),
    ("FT23", "高血压，伴一般并发症或合并症", 5_200, 7, "I11.9", "", "基层", False, False, None),
    ("BR23", "脑缺血性疾患，伴一般并发症或合并症", 11_800, 11, "I63.9", "", "二级", False, False, None),
    ("BR25", "脑缺血性疾患，不伴并发症或合并症", 8_600, 9, "I63.8", "", "一级", False, True, None),
    ("GZ15", "其他消化系统诊断，不伴并发症或合并症", 4_300, 5, "K29.7", "", "基层", False, False, None),
    ("GD19", "阑尾切除术", 11_000, 6, "K35.9", "47.09", "二级", True, False, None),
    ("HC39", "胆囊切除手术，不伴并发症或合并症", 15_500, 6, "K80.1", "51.22", "二级", False, False, None),
    ("CB39", "晶状体手术", 7_200, 2, "H26.9", "13.19", "二级", True, False, None),
    ("OF29", "阴道分娩，不伴并发症或合并症", 5_800, 3, "O80.0", "73.59", "一级", True, False, None),
    ("OB29", "剖宫产术", 9_800, 5, "O82.0", "74.1", "二级", True, False, None),
    ("IC29", "髋、膝关节置换术", 52_000, 12, "M17.1", "81.54", "三级", False, False, None),
    ("IU23", "颈腰背疾患，伴一般并发症或合并症", 7_600, 10, "M51.2", "", "一级", False, True, None),
    ("IU25", "颈腰背疾患，不伴并发症或合并症", 5_600, 8, "M54.5", "", "基层", False, True, None),
    ("IB39", "与脊柱有关的其他手术", 36_000, 11, "M48.0", "81.08", "三级", False, False, None),
    ("KS13", "糖尿病，伴一般并发症或合并症", 7_400, 9, "E11.6", "", "一级", False, False, None),
    ("KS15", "糖尿病，不伴并发症或合并症", 5_600, 7, "E11.9", "", "基层", False, False, None),
    ("RE19", "恶性增生性疾患的化学治疗和/或靶向、生物治疗", 9_800, 5, "C34.9", "99.25", "二级", False, False, None),
    ("EB19", "胸部大手术", 48_000, 14, "C34.1", "32.41", "三级", False, False, None),
    ("GE19", "腹股沟及腹疝手术", 8_800, 5, "K40.2", "53.05", "二级", False, False, None),
    ("LR19", "肾功能衰竭", 14_000, 12, "N17.9", "", "二级", False, False, None),
    ("XJ19", "康复治疗（长期住院床日组）", 18_000, 35, "Z50.9", "", "二级", False, False, "0.5200"),
]
# Which DRG group a per-disease pilot case is grouped to by the grouper.
PER_DISEASE_DRG = {"K35.8": "GD19", "K80.2": "HC39", "H25.9": "CB39", "N40": "LR19", "K40.9": "GE19"}
# Average cost of all cases (元) that turns a group's average cost into base points (× 100).
CITY_AVERAGE_CASE_COST = 10_000

# Capitation standards (元/人·年): 普通门诊 then per registered disease, by insurance type and age band.
# Left without a standard on purpose: a registration of it adds nothing and is listed in warnings.
CAPITATION_MISSING = ("G20",)

PACKAGES = [  # code, name, fee (分), items (name, content, times per year, price 分)
    ("LN2021", "老年人签约服务包", 12_000, [
        ("老年人健康体检", "一般体格检查、血常规、肝肾功能", 1, 6_000), ("慢病随访", "血压血糖监测", 4, 1_000),
    ]),
    ("MB2021", "慢病签约服务包", 15_000, [
        ("慢病随访", "高血压、糖尿病规范随访", 4, 2_000), ("用药指导", "长处方与用药评估", 4, 1_500),
    ]),
    ("ET2021", "儿童签约服务包", 8_000, [
        ("儿童保健", "生长发育评估", 2, 2_500), ("预防接种提醒", "按免疫规划提醒接种", 4, 500),
    ]),
]
FD_SERVICE_ITEMS = ["健康档案管理", "健康评估", "慢病随访", "预约转诊", "健康咨询", "上门巡诊", "用药指导"]
DOCTOR_NAMES = "建华 丽萍 国强 晓燕 志明 海英 卫东 秀珍 春林 美华 伟民 金凤 永刚 雪芳 德明 玉兰".split()
