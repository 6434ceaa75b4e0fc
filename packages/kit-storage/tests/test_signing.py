"""URLSigner: HMAC-SHA256 tokens over method, key, expiry, download name, content type."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit_storage._signing import MAX_EXPIRES_IN, SignedRequest, URLSigner, validate_expires_in
from kit_storage.exceptions import ConfigurationError, InvalidData, InvalidKey, InvalidSignature

SECRET = b"\x01" * 32
NOW = 1_800_000_000.0


def split(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return unquote(parts.path), dict(parse_qsl(parts.query, keep_blank_values=True))


@pytest.fixture
def signer() -> URLSigner:
    return URLSigner(SECRET, "https://app.example/files/")


def test_round_trip(signer: URLSigner) -> None:
    url = signer.sign("GET", "a/b c.pdf", 60, download_name="Bericht ü.pdf", now=NOW)
    assert url.startswith("https://app.example/files/a/b%20c.pdf?expires=1800000060&dl=")
    path, params = split(url)
    assert path == "/files/a/b c.pdf"
    granted = signer.verify("GET", "a/b c.pdf", params, now=NOW + 59)
    assert granted == SignedRequest("a/b c.pdf", "GET", 1_800_000_060, "Bericht ü.pdf", None)


def test_upload_round_trip(signer: URLSigner) -> None:
    url = signer.sign("put", "up.png", 900, content_type="image/png", now=NOW)
    granted = signer.verify("PUT", "up.png", split(url)[1], now=NOW)
    assert (granted.method, granted.content_type) == ("PUT", "image/png")


def test_expiry(signer: URLSigner) -> None:
    params = split(signer.sign("GET", "a.txt", 10, now=NOW))[1]
    signer.verify("GET", "a.txt", params, now=NOW + 10)  # last valid second
    with pytest.raises(InvalidSignature, match="expired"):
        signer.verify("GET", "a.txt", params, now=NOW + 11)


def test_uses_the_clock_by_default(signer: URLSigner) -> None:
    params = split(signer.sign("GET", "a.txt", 30))[1]
    assert int(params["expires"]) >= time.time()
    signer.verify("GET", "a.txt", params)


def test_none_and_empty_are_different(signer: URLSigner) -> None:
    params = split(signer.sign("GET", "a.txt", 60, now=NOW))[1]
    with pytest.raises(InvalidSignature):
        signer.verify("GET", "a.txt", {**params, "dl": ""}, now=NOW)


def test_another_secret_or_method_is_refused(signer: URLSigner) -> None:
    params = split(signer.sign("GET", "a.txt", 60, now=NOW))[1]
    other = URLSigner(b"\x02" * 32, "https://app.example/files")
    with pytest.raises(InvalidSignature, match="does not match"):
        other.verify("GET", "a.txt", params, now=NOW)
    with pytest.raises(InvalidSignature):
        signer.verify("PUT", "a.txt", params, now=NOW)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"expires": "1800000060"},
        {"sig": "abc"},
        {"expires": "soon", "sig": "abc"},
        {"expires": "-1", "sig": "abc"},
        {"expires": "١٢٣", "sig": "abc"},  # Arabic-Indic digits are digits to str.isdigit
        {"expires": "9" * 40, "sig": "abc"},
        {"expires": "1800000060", "sig": "ünïcode"},
    ],
)
def test_malformed_params_are_refused(signer: URLSigner, params: dict[str, str]) -> None:
    with pytest.raises(InvalidSignature):
        signer.verify("GET", "a.txt", params, now=NOW)


@given(
    field=st.sampled_from(["expires", "dl", "ct", "sig"]),
    replacement=st.text(max_size=40),
)
def test_any_tampering_is_refused(field: str, replacement: str) -> None:
    signer = URLSigner(SECRET, "/files")
    url = signer.sign("PUT", "k.bin", 600, download_name="n.bin", content_type="a/b", now=NOW)
    params = split(url)[1]
    if params[field] == replacement:
        return
    with pytest.raises(InvalidSignature):
        signer.verify("PUT", "k.bin", {**params, field: replacement}, now=NOW)


def test_verify_validates_the_key(signer: URLSigner) -> None:
    with pytest.raises(InvalidKey):
        signer.verify("GET", "../etc/passwd", {"expires": "1", "sig": "x"}, now=NOW)


@pytest.mark.parametrize("secret", [b"", b"x" * 31, "short", 12345])
def test_weak_or_wrong_secrets_are_refused(secret: object) -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        URLSigner(secret, "/files")  # type: ignore[arg-type]


def test_str_secret_is_accepted_as_utf8() -> None:
    a = URLSigner("s" * 32, "/files").sign("GET", "a", 60, now=NOW)
    b = URLSigner(b"s" * 32, "/files").sign("GET", "a", 60, now=NOW)
    assert a == b


@pytest.mark.parametrize(
    "base_url", ["files", "ftp://x/files", "https:///nohost", "/f?x=1", "/f#frag", "/f\nx", ""]
)
def test_bad_base_urls_are_refused(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        URLSigner(SECRET, base_url)


def test_repr_hides_the_secret(signer: URLSigner) -> None:
    assert "secret=<hidden>" in repr(signer)
    assert repr(SECRET) not in repr(signer)


@pytest.mark.parametrize("method", ["DELETE", "POST", "", None])
def test_only_get_and_put(signer: URLSigner, method: object) -> None:
    with pytest.raises(InvalidData, match="GET or PUT"):
        signer.sign(method, "a", 60)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a\r\nb", "x" * 256, "\u202eexe.txt", 5])
def test_bad_download_names(signer: URLSigner, name: object) -> None:
    with pytest.raises(InvalidData, match="download_name"):
        signer.sign("GET", "a", 60, download_name=name)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["text", "text/html\r\nSet-Cookie: x=1", "a b/c", "é/x"])
def test_bad_content_types(signer: URLSigner, kind: str) -> None:
    with pytest.raises(InvalidData, match="content_type"):
        signer.sign("PUT", "a", 60, content_type=kind)


@pytest.mark.parametrize("expires_in", [1, 0.5 + 0.5, 3600, MAX_EXPIRES_IN])
def test_expires_in_bounds_accept(expires_in: float) -> None:
    assert validate_expires_in(expires_in) == expires_in


@pytest.mark.parametrize("expires_in", [0, 0.5, -1, MAX_EXPIRES_IN + 1, None, "60", False])
def test_expires_in_bounds_refuse(expires_in: object) -> None:
    with pytest.raises(InvalidData, match="expires_in"):
        validate_expires_in(expires_in)  # type: ignore[arg-type]
