"""The client's own logic against httpx.MockTransport: parsing, error taxonomy, key safety."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest

from pipelines.juhe.client import JuheClient, shape_problem, storable_body
from pipelines.juhe.errors import (
    ErrorClass,
    JuheFatalError,
    JuheQuotaError,
    JuheTransientError,
    JuheUnusableAnswerError,
    classify,
    describe,
    error_for,
    parse_code,
)
from pipelines.settings import Secret

KEY_TEXT = "k3y-UNIT-7f1e2d"
KEY = Secret(KEY_TEXT)
URL = "http://juhe.test/enterprise/App/ConLicByName/query"


def client_answering(handler) -> JuheClient:  # type: ignore[no-untyped-def]
    return JuheClient(URL, KEY, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, ErrorClass.OK),
        ("0", ErrorClass.OK),
        (" 260204 ", ErrorClass.NOT_FOUND),
        (260201, ErrorClass.INVALID),
        ("260202", ErrorClass.INVALID),
        (260200, ErrorClass.TRANSIENT),
        (260203, ErrorClass.TRANSIENT),
        (260205, ErrorClass.TRANSIENT),
        (10014, ErrorClass.TRANSIENT),
        (10011, ErrorClass.THROTTLED),
        ("10012", ErrorClass.QUOTA),
        (10013, ErrorClass.QUOTA),
        (10020, ErrorClass.MAINTENANCE),
        *[(c, ErrorClass.FATAL) for c in (10001, 10002, 10003, 10004, 10005, 10007, 10008, 10009)],
        (10021, ErrorClass.FATAL),
        (10006, ErrorClass.TRANSIENT),
        (999999, ErrorClass.TRANSIENT),
        (None, ErrorClass.TRANSIENT),
        ("oops", ErrorClass.TRANSIENT),
    ],
)
def test_every_error_code_has_its_documented_class(code, expected) -> None:  # type: ignore[no-untyped-def]
    assert classify(code) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (260204, 260204),
        (-5, -5),
        (999_999_999, 999_999_999),
        (-999_999_999, -999_999_999),
        (1_000_000_000, None),
        (10**4000, None),  # the largest json.loads reads
        (True, None),
        (False, None),
        (0.0, None),
        (260204.0, None),
        (None, None),
        ([260204], None),
        ({"code": 0}, None),
        ("0", 0),
        (" 260204\n", 260204),
        ("+10012", 10012),
        ("-1", -1),
        ("999999999", 999_999_999),
        ("1000000000", None),
        ("9" * 5000, None),
        ("²", None),
        ("①", None),
        ("٣", None),
        ("-٣", None),
        ("1²", None),
        ("２６０２０４", None),  # fullwidth digits: int() would read them
        ("", None),
        ("-", None),
        ("+-1", None),
        ("1_000", None),
        ("0x10", None),
        ("1e3", None),
        ("\ud800", None),
    ],
)
def test_parse_code_reads_ascii_digits_only_and_never_raises(
    raw: object, expected: int | None
) -> None:
    assert parse_code(raw) == expected
    assert classify(raw) is (ErrorClass.TRANSIENT if expected is None else classify(expected))  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ['"²"', '"①"', '"٣"', '"' + "9" * 5000 + '"', "1e400", "true"])
def test_an_odd_error_code_is_transient_not_a_crash(code: str) -> None:
    text = f'{{"error_code":{code},"reason":"x","result":null}}'
    with _answering(text) as client:
        response = client.query("x")
    assert response.error_code is None and response.error_class is ErrorClass.TRANSIENT


@pytest.mark.parametrize("code", [10001, 10002, 10003, 10005, 10007, 10008, 10009, 10021])
def test_fatal_codes_tell_the_operator_to_fix_juhe_api_key(code: int) -> None:
    message = str(error_for(code))
    assert "JUHE_API_KEY" in message
    assert str(code) in message


def test_wrong_key_message_explains_the_cause() -> None:
    assert "错误的请求KEY" in describe(10001) and "wrong" in describe(10001)


def test_answer_with_string_error_code_is_parsed_and_classified() -> None:
    body = {
        "error_code": "0",
        "reason": "success",
        "sign": "ab" * 16,
        "result": {"total": 0, "items": []},
    }
    with client_answering(lambda request: httpx.Response(200, json=body)) as client:
        response = client.query("中建八局第三建设有限公司")
    assert response.error_code == 0
    assert response.error_class is ErrorClass.OK
    assert response.billable
    assert response.sign == "ab" * 16
    assert json.loads(response.body_text) == body


def test_error_answers_are_data_not_exceptions() -> None:
    body = {"error_code": 10012, "reason": "请求超过次数限制", "result": None}
    with client_answering(lambda request: httpx.Response(200, json=body)) as client:
        response = client.query("x")
    assert response.error_class is ErrorClass.QUOTA
    assert not response.billable
    assert isinstance(error_for(response.error_code), JuheQuotaError)


def test_the_key_travels_in_the_form_body_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"error_code": 260204, "reason": "查询无结果"})

    with client_answering(handler) as client:
        response = client.query("河南省宏远建设工程有限公司")
    request = seen[0]
    assert request.method == "POST"
    assert KEY_TEXT not in str(request.url)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode())
    assert form == {"key": [KEY_TEXT], "name": ["河南省宏远建设工程有限公司"]}
    assert response.error_class is ErrorClass.NOT_FOUND


def test_html_502_is_transient_with_its_status() -> None:
    html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    client = client_answering(lambda request: httpx.Response(502, text=html))
    with client, pytest.raises(JuheTransientError) as caught:
        client.query("x")
    assert caught.value.http_status == 502
    assert caught.value.error_class is ErrorClass.TRANSIENT
    assert "502" in str(caught.value)


@pytest.mark.parametrize(
    "body", ['{"error_code": 0, "reason": "succ', "<html>oops</html>", "[1, 2]", ""]
)
def test_truncated_or_non_json_200_is_unusable_and_keeps_its_body(body: str) -> None:
    # Not retried in the run: an HTTP 200 may have been billed
    # (docs/architecture.md#hostile-answers).
    client = client_answering(lambda request: httpx.Response(200, text=body))
    with client, pytest.raises(JuheUnusableAnswerError, match="not a JSON object") as caught:
        client.query("x")
    assert caught.value.http_status == 200 and caught.value.body_text == body


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ConnectError("[Errno 111] Connection refused"),
    ],
)
def test_timeouts_and_dropped_connections_are_transient(failure: httpx.TransportError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    with client_answering(handler) as client, pytest.raises(JuheTransientError) as caught:
        client.query("x")
    assert caught.value.http_status is None
    assert type(failure).__name__ in str(caught.value)


def test_no_error_message_contains_the_key_even_if_the_server_echoes_it() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            500, text=f"internal error for key={KEY_TEXT} body={request.content!r}"
        )

    with client_answering(handler) as client, pytest.raises(JuheTransientError) as caught:
        client.query("x")
    assert KEY_TEXT not in str(caught.value)
    assert KEY_TEXT not in repr(caught.value)
    assert KEY_TEXT not in repr(client)


def test_fatal_error_message_has_no_key() -> None:
    error = JuheFatalError(10001, ErrorClass.FATAL, 200, "")
    assert KEY_TEXT not in str(error)
    assert "JUHE_API_KEY" in str(error)


# -- hostile HTTP 200 answers (docs/architecture.md#hostile-answers) ----------------------------


def _answering(text: str, **kwargs: int) -> JuheClient:
    return JuheClient(
        URL,
        KEY,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, text=text)),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("text", "code", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, None, "nested too deep"),
        ('{"error_code":0,"result":' + "[" * 50_000 + "]" * 50_000 + "}", None, "nested too deep"),
        ('{"error_code":0,"reason":"ok","result":null}', 0, "result is NoneType"),
        ('{"error_code":0,"reason":"ok","result":"oops"}', 0, "result is str"),
        ('{"error_code":"0","result":{"items":{"a":1},"total":1}}', 0, "items is dict"),
        ('{"error_code":0,"result":{"total":3}}', 0, "items is NoneType"),
    ],
)
def test_unusable_answers_carry_their_body(text: str, code: int | None, problem: str) -> None:
    with _answering(text) as client, pytest.raises(JuheUnusableAnswerError) as caught:
        client.query("x")
    error = caught.value
    assert error.code == code and problem in error.problem and error.body_text == text
    assert error.http_status == 200 and KEY_TEXT not in str(error)


def test_a_body_over_the_size_cap_is_unusable() -> None:
    text = json.dumps({"error_code": 0, "result": {"items": [], "total": 0}, "pad": "x" * 2000})
    with _answering(text, max_body_bytes=1000) as client, pytest.raises(JuheUnusableAnswerError):
        client.query("x")
    with _answering(text, max_body_bytes=len(text)) as client:
        assert client.query("x").error_code == 0


@pytest.mark.parametrize(
    "text",
    [
        '{"error_code":0,"reason":"o\\u0000k","sign":"s\\u0000","result":{"items":[]}}',
        '{"error_code":0,"reason":"o\x00k","sign":"s\x00","result":{"items":[]}}',
    ],
)
def test_nul_is_made_storable(text: str) -> None:
    with _answering(text) as client:
        response = client.query("x")
    assert "\x00" not in response.body_text
    assert response.reason == "ok" and response.sign == "s"
    assert json.loads(response.body_text, strict=False)["reason"] == "o\x00k"


@pytest.mark.parametrize(
    "text",
    [
        '{"error_code":10012,"reason":"x","result":"quota"}',
        '{"error_code":260204,"reason":"none","result":null}',
        '{"error_code":0,"result":{"items":[1, "a", null],"total":"many"}}',
    ],
)
def test_wrong_types_elsewhere_are_left_to_the_item_parser(text: str) -> None:
    with _answering(text) as client:
        assert client.query("x").payload is not None


def test_storable_body_and_shape_problem_are_pure() -> None:
    assert storable_body("a\x00b") == "a\\u0000b" and storable_body("ab") == "ab"
    assert shape_problem({"result": {"items": []}}) is None
    assert shape_problem({"result": []}) == "result is list, not an object"


@pytest.mark.parametrize("depth", [200, 500])
def test_a_deep_reason_or_sign_is_named_not_rendered(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    text = f'{{"error_code":10012,"reason":{nested},"sign":{{"a":{nested}}},"result":null}}'
    with _answering(text) as client:
        response = client.query("x")
    assert (response.reason, response.sign) == ("<list>", "<dict>")


def test_a_body_that_never_ends_is_read_only_up_to_the_cap() -> None:
    def endless() -> Iterator[bytes]:
        yield b'{"error_code":0,"result":{"items":['
        while True:
            yield b'{"lic_no":"x"},' * 1000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    client = JuheClient(URL, KEY, transport=httpx.MockTransport(handler), max_body_bytes=100_000)
    with client, pytest.raises(JuheUnusableAnswerError, match="over the cap") as caught:
        client.query("x")
    assert len(caught.value.body_text) == 100_000  # the first bytes are kept


def test_lone_surrogates_are_stripped_from_reason_and_sign() -> None:
    text = '{"error_code":10012,"reason":"o\\ud800k","sign":"s\\udfff","result":null}'
    with _answering(text) as client:
        response = client.query("x")
    assert (response.reason, response.sign) == ("ok", "s")


def test_a_server_echoing_the_key_gets_it_redacted_from_every_stored_text() -> None:
    text = json.dumps({"error_code": 0, "reason": f"key={KEY_TEXT}", "result": {"items": []}})
    with _answering(text) as client:
        response = client.query("x")
    assert KEY_TEXT not in response.body_text and KEY_TEXT not in (response.reason or "")
