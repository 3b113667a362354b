"""The sandbox dataset: realistic companies, lookups, licences and bodies that match the truth."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from juhe_sandbox import identifiers as ids
from juhe_sandbox.dataset import Dataset
from tests.sandbox.parsing import parse_item

ITEM_FIELDS = {
    "category",
    "lic_no",
    "lic_name",
    "issue_org",
    "validity_start",
    "validity_end",
    "lic_scope",
    "url",
    "created_time",
    "updated_time",
}
CATEGORIES = {
    "建筑业企业资质",
    "工程设计资质",
    "工程勘察资质",
    "工程监理资质",
    "工程造价咨询企业资质",
    "建筑-勘察资质",
}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(seed=7, size=200)


def test_companies_look_real_and_are_unique(dataset: Dataset) -> None:
    companies = dataset.companies
    assert [c.index for c in companies] == list(range(200))
    assert len({c.name for c in companies}) == 200
    assert all(c.name.endswith("公司") for c in companies)
    assert any("（" in c.name for c in companies)
    assert any(c.name.endswith("有限责任公司") for c in companies)
    assert any(c.name.endswith("集团有限公司") for c in companies)
    assert sum(not c.known for c in companies) == 10  # 5 %
    assert all(ids.is_valid_uscc(c.uscc) for c in companies if c.uscc)
    assert all(ids.is_valid_regno(c.reg_no) for c in companies if c.reg_no)
    reg_only = [c for c in companies if c.uscc is None]
    assert reg_only and all(c.reg_no for c in reg_only)


def test_lookup_by_name_brackets_uscc_and_registration_number(dataset: Dataset) -> None:
    bracketed = next(c for c in dataset.companies if "（" in c.name and c.uscc)
    half_width = bracketed.name.replace("（", "(").replace("）", ")")
    assert dataset.lookup(f"  {half_width} ") == bracketed
    assert bracketed.uscc is not None
    assert dataset.lookup(bracketed.uscc.lower()) == bracketed
    with_regno = next(c for c in dataset.companies if c.reg_no)
    assert with_regno.reg_no is not None
    assert dataset.lookup(with_regno.reg_no) == with_regno
    assert dataset.lookup("不存在的建设有限公司") is None


def test_known_companies_have_realistic_licences(dataset: Dataset) -> None:
    licences = [lic for c in dataset.companies if c.known for lic in dataset.licenses(c, 0)]
    per_company = Counter(len(dataset.licenses(c, 0)) for c in dataset.companies if c.known)
    assert set(per_company) <= set(range(1, 7)) and min(per_company) == 1
    assert {lic.category for lic in licences} == CATEGORIES
    assert any(lic.lic_no == "" for lic in licences)
    assert all(re.fullmatch(r"[A-Z]\d{9}", lic.lic_no) for lic in licences if lic.lic_no)
    contractor = [lic for lic in licences if lic.category == "建筑业企业资质"]
    assert any(len(lic.lic_name) >= 3 for lic in contractor)
    assert any("施工劳务不分等级" in lic.lic_name for lic in contractor)
    orgs = {lic.issue_org for lic in licences}
    assert "中华人民共和国住房和城乡建设部" in orgs and "河南省住房和城乡建设厅" in orgs
    assert all(
        lic.url.startswith("http://jzsc.mohurd.gov.cn/data/company/detail?id=") for lic in licences
    )
    assert any(lic.open_ended and lic.validity_end is None for lic in licences)
    assert all(lic.created_time <= lic.updated_time for lic in licences)
    assert all(lic.updated_time.tzinfo is not None for lic in licences)


def test_unknown_companies_are_never_found(dataset: Dataset) -> None:
    unknown = [c for c in dataset.companies if not c.known]
    for company in unknown:
        for day in (0, 5, 30):
            assert dataset.licenses(company, day) == []
            assert str(dataset.response(company.name, day)["error_code"]) == "260204"


@pytest.mark.parametrize("day", [0, 12, 30])
def test_every_body_parses_back_to_the_truth(dataset: Dataset, day: int) -> None:
    """The format noise (date forms, string lic_name, padded names…) never changes meaning."""
    for company in dataset.companies:
        body = dataset.response(company.name, day)
        truth = dataset.licenses(company, day)
        if not truth:
            assert body["result"] is None
            continue
        assert str(body["error_code"]) == "0"
        assert re.fullmatch(r"[0-9a-f]{32}", body["sign"])
        items = body["result"]["items"]
        assert body["result"]["total"] == len(items) == len(truth)
        assert all(set(item) in (ITEM_FIELDS, ITEM_FIELDS - {"lic_name"}) for item in items)
        assert [parse_item(item) for item in items] == truth


def test_format_noise_shows_each_documented_form(dataset: Dataset) -> None:
    items = [
        item
        for c in dataset.companies
        for item in (dataset.response(c.name, 0)["result"] or {"items": []})["items"]
    ]
    starts = [item["validity_start"] for item in items]
    assert any(isinstance(v, int) for v in starts)
    assert any(isinstance(v, str) and "/" in v for v in starts)
    assert any(isinstance(v, str) and re.fullmatch(r"\d{8}", v) for v in starts)
    assert any(isinstance(v, str) and v.endswith(" 00:00:00") for v in starts)
    assert {"长期", "永久"} <= {item["validity_end"] for item in items}
    assert any(isinstance(item.get("lic_name"), str) for item in items)
    assert any(len(item["updated_time"]) == 10 for item in items)
    assert any(len(item["updated_time"]) == 19 for item in items)
    codes = [dataset.response(c.name, 0)["error_code"] for c in dataset.companies]
    assert "0" in codes and 0 in codes


def test_same_seed_same_bodies_other_seed_other_world() -> None:
    first, second, other = Dataset(seed=11, size=60), Dataset(seed=11, size=60), Dataset(12, 60)
    assert first.companies == second.companies
    for company in first.companies:
        for day in (0, 9):
            assert first.response(company.name, day) == second.response(company.name, day)
    assert [c.name for c in first.companies] != [c.name for c in other.companies]


def test_garbage_noise_only_when_asked() -> None:
    clean, noisy = Dataset(seed=7, size=200), Dataset(seed=7, size=200, noise_garbage=True)
    garbage = {"0000-00-00", "见证书", "2021年12月31日", "-", "N/A"}

    def ends(data: Dataset) -> set[object]:
        return {
            item["validity_end"]
            for c in data.companies
            for item in (data.response(c.name, 0)["result"] or {"items": []})["items"]
        }

    assert not ends(clean) & garbage
    assert ends(noisy) & garbage


def test_large_dataset_builds_and_answers() -> None:
    big = Dataset(seed=7, size=100_000)
    last = big.companies[-1]
    assert big.lookup(last.name) == last
    assert len({c.name for c in big.companies}) == 100_000
    assert big.response(last.uscc or last.reg_no or "", 3)["error_code"] in (
        0,
        "0",
        260204,
        "260204",
    )
