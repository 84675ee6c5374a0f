"""lpfleet.secrets: the one secret type, the one masking rule, the one collector."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from lpfleet.operations.files import hidden
from lpfleet.secrets import MissingSecret, Secret, env_secret, mask, reveal, secret_values
from lpfleet.spec import build_node_spec


@pytest.mark.parametrize(
    "text,expected",
    [
        ("http://user:pa55word@byoc.lan:8000/v1", "http://***@byoc.lan:8000/v1"),
        ("url https://tok3n@flux.lan:8443 down", "url https://***@flux.lan:8443 down"),
        ("https://api.example/v1?apikey=AbC123&model=x", "https://api.example/v1?apikey=***&model=x"),
        (
            "GET /x?model=a&token=t0k&key=k3y&Signature=s1g#frag",
            "GET /x?model=a&token=***&key=***&Signature=***#frag",
        ),
        ('[{"token": "a\\"b", "url": "http://x"}]', '[{"token": "***", "url": "http://x"}]'),
        ("https://byoc.lan:8000/v1?model=a", "https://byoc.lan:8000/v1?model=a"),  # nothing secret: unchanged
        (
            '"http://x/v1?model=a\\u0026token=t0k\\u0026b=c"',
            '"http://x/v1?model=a\\u0026token=***\\u0026b=c"',
        ),  # JSON's &
    ],
)
def test_mask_covers_url_credentials_query_values_and_json_tokens(text, expected):
    assert mask(text) == expected


def test_mask_hides_given_values_in_every_form():
    hv = hidden("hv-secret-1")
    out = mask(
        'plain s3cret-value, json "q\\"uote-secret", hv-secret-1, pydantic p-secret',
        ["s3cret-value", 'q"uote-secret', hv, SecretStr("p-secret"), None, ""],
    )
    assert out == 'plain ***, json "***", ***, pydantic ***'


def test_secret_prints_masked_everywhere_and_pyinfra_can_serialize_it():
    secret = Secret("the-real-value")
    assert "the-real-value" not in repr(secret) + str(secret) + secret.to_json()
    assert secret.to_json() == "**********" and reveal(secret) == "the-real-value"
    assert json.dumps({"t": secret}, default=lambda o: o.to_json()) == '{"t": "**********"}'


def test_env_secret_unset_is_a_missing_secret_naming_the_variable(monkeypatch):
    monkeypatch.delenv("LPFLEET_TEST_UNSET", raising=False)
    missing = env_secret("LPFLEET_TEST_UNSET")
    assert isinstance(missing, MissingSecret) and not missing and reveal(missing) is None
    assert "LPFLEET_TEST_UNSET is not set" in missing.message() and "optional=True" in missing.message()
    assert env_secret("LPFLEET_TEST_UNSET", optional=True) is None
    monkeypatch.setenv("LPFLEET_TEST_UNSET", "")
    assert isinstance(env_secret("LPFLEET_TEST_UNSET"), MissingSecret)  # empty counts as unset


def test_secret_values_finds_every_secret_of_a_spec():
    byoc = {
        "pipeline": "llm",
        "model_id": "x/y",
        "url": "http://llm:8000",
        "token": Secret("tok-1"),
        "price_per_unit": 1,
    }
    spec = build_node_spec("h", [("group g", {"ai_models": [byoc], "orch_secret": Secret("orch-1")})], ("g",))
    assert set(secret_values(spec)) == {"tok-1", "orch-1"}
    assert secret_values({"a": [SecretStr("x1")], "b": "not-secret"}) == ("x1",)
