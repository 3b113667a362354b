"""Vocabulary for realistic company names, regions, issuing authorities and qualification names.

Pure data plus tiny helpers; the dataset draws from it with seeded random generators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from random import Random
from typing import TypeVar

T = TypeVar("T")

MINISTRY = "中华人民共和国住房和城乡建设部"


@dataclass(frozen=True, slots=True)
class Province:
    name: str  # 河南省
    short: str  # 河南
    code: str  # two-digit region prefix, also used in licence numbers
    department: str  # the provincial housing authority that issues mid-grade licences
    cities: tuple[tuple[str, str], ...]  # (city name, 6-digit region code)


def _province(
    name: str, short: str, code: str, cities: str, dept: str = "住房和城乡建设厅"
) -> Province:
    pairs = tuple((city, region) for city, region in (item.split(":") for item in cities.split()))
    return Province(name, short, code, name + dept, pairs)


PROVINCES: tuple[Province, ...] = (
    _province(
        "河南省",
        "河南",
        "41",
        "郑州市:410100 洛阳市:410300 开封市:410200 南阳市:411300 新乡市:410700 "
        "商丘市:411400 周口市:411600 许昌市:411000",
    ),
    _province(
        "江苏省",
        "江苏",
        "32",
        "南京市:320100 苏州市:320500 无锡市:320200 南通市:320600 徐州市:320300",
    ),
    _province("浙江省", "浙江", "33", "杭州市:330100 宁波市:330200 温州市:330300 绍兴市:330600"),
    _province("广东省", "广东", "44", "广州市:440100 深圳市:440300 佛山市:440600 东莞市:441900"),
    _province("山东省", "山东", "37", "济南市:370100 青岛市:370200 潍坊市:370700 临沂市:371300"),
    _province("四川省", "四川", "51", "成都市:510100 绵阳市:510700 南充市:511300"),
    _province("湖北省", "湖北", "42", "武汉市:420100 宜昌市:420500 襄阳市:420600"),
    _province("陕西省", "陕西", "61", "西安市:610100 宝鸡市:610300"),
    _province("福建省", "福建", "35", "福州市:350100 厦门市:350200 泉州市:350500"),
    _province("安徽省", "安徽", "34", "合肥市:340100 芜湖市:340200 阜阳市:341200"),
    _province("河北省", "河北", "13", "石家庄市:130100 保定市:130600 唐山市:130200"),
    _province("湖南省", "湖南", "43", "长沙市:430100 株洲市:430200 岳阳市:430600"),
    _province("江西省", "江西", "36", "南昌市:360100 赣州市:360700"),
    _province("山西省", "山西", "14", "太原市:140100 大同市:140200"),
    _province("云南省", "云南", "53", "昆明市:530100 曲靖市:530300"),
    _province("辽宁省", "辽宁", "21", "沈阳市:210100 大连市:210200"),
    _province("广西壮族自治区", "广西", "45", "南宁市:450100 柳州市:450200"),
    _province("北京市", "北京", "11", "北京市:110105 北京市:110108", "住房和城乡建设委员会"),
    _province("上海市", "上海", "31", "上海市:310104 上海市:310115", "住房和城乡建设管理委员会"),
    _province("天津市", "天津", "12", "天津市:120104", "住房和城乡建设委员会"),
    _province("重庆市", "重庆", "50", "重庆市:500103 重庆市:500112", "住房和城乡建设委员会"),
)

# Henan and Jiangsu appear more often, like in the juhe documentation's examples.
PROVINCE_WEIGHTS: tuple[int, ...] = (8, 5, 4, 4, 4, 3, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 2, 2, 1, 1)

BRAND_FIRST = (
    "宏华中恒鼎金鸿东长兴永大瑞天新建广正润盛锦荣泰嘉信同众远海星腾祥"
    "博聚振国万隆安昌德明宇晨卓联利通顺丰汇凯昊鑫伟茂晟睿诚浩"
)
BRAND_SECOND = (
    "远华建泰盛鹏基方城业丰宇厦和达世程禾诚大天辰飞瑞力图石"
    "通鑫安昌信珠成光越创兴民源伟茂晟润德邦恒峰阳辉"
)

#: Company kinds: the line of business decides the words in the name and the licence categories.
KINDS: tuple[str, ...] = ("contractor", "design", "survey", "supervision", "cost")
KIND_WEIGHTS: tuple[int, ...] = (70, 12, 6, 8, 4)

INDUSTRY_WORDS: dict[str, tuple[str, ...]] = {
    "contractor": (
        "建设工程",
        "建筑工程",
        "建设",
        "建工",
        "市政工程",
        "路桥工程",
        "安装工程",
        "水利水电工程",
        "建筑装饰工程",
        "园林绿化工程",
        "建筑安装工程",
        "土木工程",
        "建设发展",
        "建设开发",
    ),
    "design": (
        "建筑设计研究院",
        "工程设计",
        "市政工程设计研究院",
        "规划设计研究院",
        "建筑设计",
        "工程设计咨询",
    ),
    "survey": ("工程勘察", "岩土工程", "勘察设计", "地质工程勘察", "勘测设计"),
    "supervision": ("工程监理", "建设监理", "工程项目管理", "工程咨询", "建设工程监理"),
    "cost": ("工程造价咨询", "造价咨询", "工程管理咨询", "建设工程造价咨询"),
}

#: Legal-form endings with weights; bracketed forms exercise full-width bracket handling.
SUFFIXES: tuple[tuple[str, int], ...] = (
    ("有限公司", 52),
    ("有限责任公司", 20),
    ("集团有限公司", 12),
    ("股份有限公司", 5),
    ("（集团）有限公司", 6),
    ("（{short}）有限公司", 5),
)

CHINESE_NUMERALS = (
    "一",
    "二",
    "三",
    "四",
    "五",
    "六",
    "七",
    "八",
    "九",
    "十",
    "十一",
    "十二",
    "十三",
    "十四",
    "十五",
    "十六",
    "十七",
    "十八",
    "十九",
    "二十",
)

#: Subsidiaries of central state-owned builders, as "pattern", (first count, second count).
STATE_OWNED: tuple[tuple[str, int, int], ...] = (
    ("中建{a}局第{b}建设有限公司", 8, 8),
    ("中铁{a}局集团第{b}工程有限公司", 20, 6),
    ("中交第{a}公路工程局有限公司", 4, 1),
    ("中国水利水电第{a}工程局有限公司", 16, 1),
    ("中国建筑第{a}工程局有限公司", 8, 1),
    ("中铁{a}局集团建筑安装工程有限公司", 20, 1),
    ("中冶建工集团第{a}建设有限公司", 6, 1),
)

# --- qualification names -------------------------------------------------------------------

GENERAL_CONTRACTING = (
    "建筑工程",
    "市政公用工程",
    "公路工程",
    "水利水电工程",
    "铁路工程",
    "港口与航道工程",
    "电力工程",
    "矿山工程",
    "冶金工程",
    "石油化工工程",
    "通信工程",
    "机电工程",
)
SPECIALTY_CONTRACTING = (
    ("地基基础工程", "一二三"),
    ("起重设备安装工程", "一二"),
    ("预拌混凝土", ""),
    ("电子与智能化工程", "一二"),
    ("消防设施工程", "一二"),
    ("防水防腐保温工程", "一二"),
    ("桥梁工程", "一二三"),
    ("隧道工程", "一二三"),
    ("钢结构工程", "一二三"),
    ("模板脚手架", ""),
    ("建筑装修装饰工程", "一二"),
    ("建筑机电安装工程", "一二三"),
    ("建筑幕墙工程", "一二"),
    ("古建筑工程", "一二三"),
    ("城市及道路照明工程", "一二三"),
    ("公路路面工程", "一二三"),
    ("公路路基工程", "一二三"),
    ("公路交通工程（公路安全设施）", "一二"),
    ("公路交通工程（公路机电工程）", "一二"),
    ("环保工程", "一二三"),
    ("特种工程(结构补强)", ""),
    ("输变电工程", "一二三"),
    ("水利水电机电安装工程", "一二三"),
    ("河湖整治工程", "一二三"),
)
LABOUR = "施工劳务不分等级"
#: Pre-2015 spellings still found on old certificates (grade with 壹/贰/叁).
LEGACY_CONTRACTING = (
    "房屋建筑工程施工总承包叁级",
    "房屋建筑工程施工总承包贰级",
    "市政公用工程施工总承包壹级",
    "机电设备安装工程专业承包贰级",
)

DESIGN_NAMES = (
    "工程设计建筑行业（建筑工程）甲级",
    "工程设计建筑行业（建筑工程）乙级",
    "工程设计市政行业（燃气工程、轨道交通工程除外）甲级",
    "工程设计市政行业（给水工程、排水工程）专业乙级",
    "工程设计风景园林工程专项乙级",
    "工程设计建筑装饰工程专项乙级",
    "工程设计电力行业水力发电（含抽水蓄能、潮汐）专业乙级",
    "工程设计水利行业灌溉排涝专业乙级",
    "工程设计公路行业公路专业甲级",
    "工程设计煤炭行业甲级",
    "工程设计铁道行业甲（Ⅰ）级",
    "工程设计化工石化医药行业生化、生物药专业甲级",
    "工程设计建筑设计事务所甲级",
    "建筑智能化系统设计专项甲级",
    "工程设计消防设施工程专项乙级",
    "工程设计环境工程专项（水污染防治工程）乙级",
    "工程设计建筑行业（人防工程）丙级",
    "化工石化医药行业（化工工程、石油及化工产品储运）专业甲级",
)
SURVEY_NAMES = (
    "工程勘察综合资质甲级",
    "工程勘察岩土工程专业乙级",
    "工程勘察岩土工程专业（岩土工程勘察）甲级",
    "工程勘察岩土工程专业（岩土工程物探测试检测监测）乙级",
    "工程勘察工程测量专业甲级",
    "工程勘察水文地质勘察专业乙级",
    "工程勘察海洋工程勘察专业（海洋工程测量）甲级",
    "工程勘察工程钻探劳务",
    "工程勘察凿井劳务",
)
SUPERVISION_NAMES = (
    "工程监理综合资质",
    "房屋建筑工程监理甲级",
    "市政公用工程监理甲级",
    "工程监理市政公用工程专业丙级",
    "公路工程监理乙级",
    "水利水电工程监理乙级",
    "机电安装工程监理乙级",
    "电力工程监理丙级",
    "工程招标代理甲级",
)
COST_NAMES = ("工程造价咨询甲级", "工程造价咨询乙级")

#: Licence categories: (category, lic_no prefix letter, max names on one certificate).
CATEGORY_CONTRACTOR = "建筑业企业资质"
CATEGORY_DESIGN = "工程设计资质"
CATEGORY_SURVEY = "工程勘察资质"
CATEGORY_SURVEY_ALT = "建筑-勘察资质"  # the label of the juhe documentation's example
CATEGORY_SUPERVISION = "工程监理资质"
CATEGORY_COST = "工程造价咨询企业资质"
LIC_NO_PREFIX = {
    CATEGORY_CONTRACTOR: "D",
    CATEGORY_DESIGN: "A",
    CATEGORY_SURVEY: "B",
    CATEGORY_SURVEY_ALT: "B",
    CATEGORY_SUPERVISION: "E",
    CATEGORY_COST: "Z",
}

#: Which categories a company of each kind holds, with weights.
KIND_CATEGORIES: dict[str, tuple[tuple[str, int], ...]] = {
    "contractor": (
        (CATEGORY_CONTRACTOR, 80),
        (CATEGORY_DESIGN, 12),
        (CATEGORY_SUPERVISION, 4),
        (CATEGORY_SURVEY, 4),
    ),
    "design": (
        (CATEGORY_DESIGN, 60),
        (CATEGORY_SURVEY, 15),
        (CATEGORY_SURVEY_ALT, 5),
        (CATEGORY_CONTRACTOR, 10),
        (CATEGORY_SUPERVISION, 10),
    ),
    "survey": (
        (CATEGORY_SURVEY, 50),
        (CATEGORY_SURVEY_ALT, 20),
        (CATEGORY_DESIGN, 20),
        (CATEGORY_CONTRACTOR, 10),
    ),
    "supervision": ((CATEGORY_SUPERVISION, 60), (CATEGORY_COST, 25), (CATEGORY_DESIGN, 15)),
    "cost": ((CATEGORY_COST, 60), (CATEGORY_SUPERVISION, 40)),
}

DESCRIPTIVE_SCOPES: dict[str, str] = {
    CATEGORY_CONTRACTOR: (
        "可承担资质证书许可范围内的施工总承包、专业承包及相应的工程总承包、项目管理业务"
    ),
    CATEGORY_DESIGN: (
        "可从事资质证书许可范围内相应的建设工程总承包业务以及项目管理和相关的技术与管理服务"
    ),
    CATEGORY_SURVEY: "可承担资质证书许可范围内的工程勘察业务",
    CATEGORY_SURVEY_ALT: "可承担资质证书许可范围内的工程勘察业务",
    CATEGORY_SUPERVISION: "可承担资质证书许可范围内的建设工程监理、项目管理及技术咨询业务",
    CATEGORY_COST: "可承担各类建设项目的工程造价咨询业务",
}
SCOPE_EDITS = ("", "（以证书原件为准）", "及相关的技术咨询与管理服务", "（限本省行政区域内）")

#: Grade words in ascending rank: the highest grade on a certificate decides who issues it.
MINISTRY_GRADES = ("特级", "综合", "甲（Ⅰ）级")
CITY_GRADES = ("三级", "丙级", "叁级", "不分等级", "劳务")


def pick_weighted(rng: Random, options: Sequence[tuple[T, int]]) -> T:
    """One option drawn with its integer weight."""
    point = rng.random() * sum(weight for _, weight in options)
    for option, weight in options:
        point -= weight
        if point < 0:
            return option
    return options[-1][0]


def _grade(rng: Random, grades: str) -> str:
    return "不分等级" if not grades else rng.choice(grades) + "级"


def _general_contracting(rng: Random) -> str:
    grade = pick_weighted(rng, (("特级", 2), ("一级", 20), ("二级", 40), ("三级", 38)))
    return rng.choice(GENERAL_CONTRACTING) + "施工总承包" + grade


def _specialty(rng: Random) -> str:
    name, grades = rng.choice(SPECIALTY_CONTRACTING)
    return name + "专业承包" + _grade(rng, grades)


def contractor_names(rng: Random) -> list[str]:
    """Names on one 建筑业企业资质 certificate: usually 3–6, a general contracting one first."""
    count = rng.randint(3, 6) if rng.random() < 0.85 else rng.randint(1, 2)
    first = rng.choice(LEGACY_CONTRACTING) if rng.random() < 0.04 else _general_contracting(rng)
    names = [first]
    if rng.random() < 0.4:
        names.append(LABOUR)
    while len(names) < count:
        candidate = _specialty(rng) if rng.random() < 0.8 else _general_contracting(rng)
        if all(candidate[:6] != existing[:6] for existing in names):
            names.append(candidate)
    return names[:count]


_FIXED_VOCAB = {
    CATEGORY_DESIGN: (DESIGN_NAMES, 3),
    CATEGORY_SURVEY: (SURVEY_NAMES, 3),
    CATEGORY_SURVEY_ALT: (SURVEY_NAMES, 2),
    CATEGORY_SUPERVISION: (SUPERVISION_NAMES, 3),
    CATEGORY_COST: (COST_NAMES, 1),
}


def qualification_names(rng: Random, category: str) -> list[str]:
    """The names a new certificate of `category` carries, in display order."""
    if category == CATEGORY_CONTRACTOR:
        return contractor_names(rng)
    vocab, most = _FIXED_VOCAB[category]
    return rng.sample(vocab, rng.randint(1, most))


def extra_name(rng: Random, category: str, present: Sequence[str]) -> str | None:
    """A name not yet on the certificate (for updates that add one), or None if none is left."""
    for _ in range(20):
        if category == CATEGORY_CONTRACTOR:
            candidate = _specialty(rng)
        else:
            candidate = rng.choice(_FIXED_VOCAB[category][0])
        if candidate not in present:
            return candidate
    return None


def issuer_level(names: Sequence[str]) -> int:
    """1 = the ministry, 2 = a provincial authority, 3 = a city bureau; by the top grade."""
    if any(_ministry_grade(n) for n in names):
        return 1
    if names and all(any(g in n for g in CITY_GRADES) for n in names):
        return 3
    return 2


def _ministry_grade(name: str) -> bool:
    national = name.startswith(("工程设计", "工程勘察")) and name.endswith("甲级")
    return national or any(g in name for g in MINISTRY_GRADES)


def issue_org(level: int, province: Province, city: str) -> str:
    if level == 1:
        return MINISTRY
    if level == 3 and city != province.name:
        return city + "住房和城乡建设局"
    return province.department


def scope_text(category: str, names: Sequence[str], style: int, edit: int) -> str:
    """lic_scope: the names joined (style 0 "；", 1 "，") or a descriptive sentence (style 2)."""
    if style == 2 or not names:
        base = DESCRIPTIVE_SCOPES[category]
    else:
        base = ("；" if style == 0 else "，").join(names)
    return base + SCOPE_EDITS[edit]
