"""The settings refuse an endpoint the key must not travel to, and never echo a password."""

from __future__ import annotations

import pytest

from pipelines.settings import DEFAULT_BASE_URL, Settings, SettingsError

PASSWORD = "pw-9c1e77d0"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("JUHE_BASE_URL", "JUHE_ALLOW_INSECURE_HTTP", "DATABASE_URL", "JUHE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_default_endpoint_is_juhe_over_https(env: pytest.MonkeyPatch) -> None:
    assert DEFAULT_BASE_URL == "https://v.juhe.cn/enterprise/App/ConLicByName/query"
    assert Settings.from_env().juhe_base_url == DEFAULT_BASE_URL


@pytest.mark.parametrize(
    "url",
    [
        "https://v.juhe.cn/enterprise/App/ConLicByName/query",
        "https://juhe-gateway.example.com:8443/query",
        "http://127.0.0.1:8765/enterprise/App/ConLicByName/query",
        "http://127.3.2.1/query",
        "http://localhost:8765/query",
        "http://LOCALHOST/query",
        "http://[::1]:8765/query",
    ],
)
def test_https_anywhere_and_plain_http_to_this_host_are_accepted(
    env: pytest.MonkeyPatch, url: str
) -> None:
    env.setenv("JUHE_BASE_URL", url)
    settings = Settings.from_env()
    assert settings.juhe_base_url == url
    assert settings.juhe_insecure_http_warning is None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://v.juhe.cn/enterprise/App/ConLicByName/query", "plain http to v.juhe.cn"),
        ("http://10.0.0.7:8765/query", "JUHE_ALLOW_INSECURE_HTTP=1"),
        ("http://127.0.0.1.evil.example/query", "plain http"),
        ("http://localhost.evil.example/query", "plain http"),
        ("https://v.juhe.cn/query?key=abc", "query string"),
        ("https://v.juhe.cn/query?", "query string"),
        ("https://v.juhe.cn/query#frag", "fragment"),
        (f"https://user:{PASSWORD}@v.juhe.cn/query", "credentials"),
        (f"https://{PASSWORD}@v.juhe.cn/query", "credentials"),
        (f"user:{PASSWORD}@v.juhe.cn/query", "credentials"),
        ("ftp://v.juhe.cn/query", "https://"),
        ("file:///etc/passwd", "https://"),
        ("v.juhe.cn/enterprise/App/ConLicByName/query", "https://"),
        ("https:///query", "no host"),
        ("https://v.juhe.cn:99999/query", "not a URL"),
        ("https://v.juhe.cn/que ry", "spaces"),
    ],
)
def test_an_endpoint_the_key_must_not_travel_to_is_refused(
    env: pytest.MonkeyPatch, url: str, said: str
) -> None:
    env.setenv("JUHE_BASE_URL", url)
    with pytest.raises(SettingsError) as refused:
        Settings.from_env()
    message = str(refused.value)
    assert message.startswith("JUHE_BASE_URL=")
    assert said in message
    assert PASSWORD not in message
    assert "key=abc" not in message


def test_plain_http_to_another_host_needs_the_opt_in_and_then_warns(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("JUHE_BASE_URL", "http://juhe-proxy.internal/query")
    with pytest.raises(SettingsError, match="JUHE_ALLOW_INSECURE_HTTP"):
        Settings.from_env()
    env.setenv("JUHE_ALLOW_INSECURE_HTTP", "1")
    warning = Settings.from_env().juhe_insecure_http_warning
    assert warning is not None and "juhe-proxy.internal" in warning and "unencrypted" in warning
    # The opt-in never lets through what is refused for other reasons.
    env.setenv("JUHE_BASE_URL", f"http://u:{PASSWORD}@juhe-proxy.internal/query")
    with pytest.raises(SettingsError, match="credentials"):
        Settings.from_env()


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_the_opt_in_is_a_plain_switch(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("JUHE_ALLOW_INSECURE_HTTP", value)
    with pytest.raises(SettingsError, match="JUHE_ALLOW_INSECURE_HTTP"):
        Settings.from_env()


def test_a_malformed_database_url_is_refused_without_echoing_it(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("DATABASE_URL", f"not a url {PASSWORD}")
    with pytest.raises(SettingsError, match="DATABASE_URL") as refused:
        Settings.from_env()
    assert PASSWORD not in str(refused.value)


def test_the_settings_repr_hides_the_database_password(env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_URL", f"postgresql://zizhi:{PASSWORD}@db.internal:5432/zizhi")
    settings = Settings.from_env()
    assert PASSWORD not in repr(settings)
    assert "db.internal" in repr(settings)
    assert settings.database_url.endswith("@db.internal:5432/zizhi")  # the real one is kept


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("JUHE_RATE_MARGIN_MS", "200", "juhe_rate_margin_ms", 200),
        ("JUHE_REQUEST_DEADLINE_S", "12.5", "juhe_request_deadline_s", 12.5),
        ("JUHE_MAX_BODY_BYTES", "1048576", "juhe_max_body_bytes", 1048576),
    ],
)
def test_fetch_limits_are_read_from_the_environment(
    env: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: float
) -> None:
    env.setenv(variable, value)
    assert getattr(Settings.from_env(), field) == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JUHE_RATE_MARGIN_MS", "-5"),
        ("JUHE_RATE_MARGIN_MS", "5000"),
        ("JUHE_RATE_MARGIN_MS", "10%"),
        ("JUHE_REQUEST_DEADLINE_S", "0.1"),
        ("JUHE_MAX_BODY_BYTES", "100"),
        ("JUHE_MAX_BODY_BYTES", str(1024**3)),
    ],
)
def test_an_out_of_range_fetch_limit_names_the_variable_and_the_value(
    env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env()


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("JUHE_QPS", "nan", "must be a finite number"),
        ("JUHE_QPS", "NaN", "must be a finite number"),
        ("JUHE_QPS", "inf", "must be a finite number"),
        ("JUHE_QPS", "1e400", "must be a finite number"),
        ("JUHE_REQUEST_DEADLINE_S", "inf", "must be a finite number"),
        ("JUHE_REQUEST_DEADLINE_S", "nan", "must be a finite number"),
        ("JUHE_PRICE_PER_CALL", "nan", "must be a finite number"),
        ("ZIZHI_REFRESH_INTERVAL_DAYS", "-inf", "must be a finite number"),
        ("JUHE_DAILY_BUDGET", "inf", "must be a finite number"),
        ("JUHE_DAILY_BUDGET", "nan", "must be a finite number"),
        ("JUHE_DAILY_BUDGET", "2.7", "must be a whole number"),
        ("JUHE_DAILY_BUDGET", "0", "must be at least 1"),
    ],
)
def test_a_number_that_is_not_a_finite_value_of_its_kind_is_refused_naming_it(
    env: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    """nan passes every comparison, inf overflows int(), 2.7 calls are not a budget: each is a
    SettingsError naming the variable (the CLI's exit 2), never a traceback or a silent change."""
    env.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"^{variable}='{value}' {said}$"):
        Settings.from_env()


@pytest.mark.parametrize(("value", "budget"), [("3", 3), (" 40 ", 40), ("2.0", 2), ("", None)])
def test_the_daily_budget_is_a_whole_number_of_calls(
    env: pytest.MonkeyPatch, value: str, budget: int | None
) -> None:
    env.setenv("JUHE_DAILY_BUDGET", value)
    assert Settings.from_env().juhe_daily_budget == budget
