"""Masking Apprise URLs: real URL shapes with fake secrets, older Apprise privacy-mode strings,
and properties over generated input (never raises, idempotent, a planted secret never shows)."""

from __future__ import annotations

import re
import string
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.delivery.apprise_mask import mask_apprise_url

# (url, secrets that must not show, parts that must show besides the scheme)
CASES: list[tuple[str, list[str], list[str]]] = [
    (
        "discord://123456789012345678/Qx7vT9kLmN2pR4sWz8yB1cD3eF5gH6jK?avatar=no&format=markdown",
        ["123456789012345678", "Qx7vT9kLmN2pR4sWz8yB1cD3eF5gH6jK"],
        ["avatar=no", "format=markdown"],
    ),
    (
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
        ["T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"],
        ["/#general"],
    ),
    (
        "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12345",
        ["AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"],
        ["/12345"],
    ),
    (
        "ntfys://ntfy.sh/my-alerts?token=tk_8x2kq9vz3m5n7b1c4d6f0g2h8j&priority=high",
        ["tk_8x2kq9vz3m5n7b1c4d6f0g2h8j"],
        ["ntfy.sh/my-alerts", "priority=high"],
    ),
    (
        "ntfy://alerts:Nt5Vq8Wz2Kp4@ntfy.example.com/server-alerts",
        ["Nt5Vq8Wz2Kp4"],
        ["alerts:", "@ntfy.example.com/server-alerts"],
    ),
    ("gotifys://gotify.example.com/Gq4Tz8Kw1Mx6", ["Gq4Tz8Kw1Mx6"], ["gotify.example.com"]),
    (
        "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        ["uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"],
        [],
    ),
    ("matrixs://alerts:Mx9Qp2Lk7Vb3@matrix.org/#ops", ["Mx9Qp2Lk7Vb3"], ["matrix.org/#ops"]),
    (
        "matrixs://matrix.example.org/#ops?token=syt_YWxlcnRz_Qm8Zp3Xk7Wv2Lr5Tn_1a2B3c",
        ["syt_YWxlcnRz_Qm8Zp3Xk7Wv2Lr5Tn_1a2B3c"],
        ["matrix.example.org/#ops"],
    ),
    (
        "mailtos://alerts:Pw7kq9ZxR2@gmail.com?to=ops@example.com",
        ["Pw7kq9ZxR2"],
        ["@gmail.com", "to=ops@example.com"],
    ),
    (
        "mailto://alerts:Sm3Tp8Qx5Vk@smtp.example.com?smtp=smtp.example.com"
        "&from=alerts@example.com&to=ops@example.com&mode=starttls",
        ["Sm3Tp8Qx5Vk"],
        ["@smtp.example.com", "smtp=smtp.example.com", "mode=starttls"],
    ),
    (
        "json://hooks.example.com/api/hook?+Authorization=Bearer%20Zq8Xv3Lp9Wk2"
        "&-apikey=Mn4Bv7Cx1Zq9&:secret=Hj6Kl2Pz8Rt4&format=markdown",
        ["Zq8Xv3Lp9Wk2", "Mn4Bv7Cx1Zq9", "Hj6Kl2Pz8Rt4"],
        ["hooks.example.com/api/hook", "format=markdown"],
    ),
    (
        "jsons://hooks.example.com:8443/hook?%2BX-Token=Vb2Nm8Qw4Ez6&%3Apassword=Rt5Yu7Io9Pa1",
        ["Vb2Nm8Qw4Ez6", "Rt5Yu7Io9Pa1"],
        ["hooks.example.com:8443/hook"],
    ),
    (
        "form://poster:Fp4Lk8Mz2Qx7@forms.example.com/submit?-key=Yh3&+X-Api-Key=Ol5Pm7Ni3Bu8",
        ["Fp4Lk8Mz2Qx7", "Yh3", "Ol5Pm7Ni3Bu8"],
        ["forms.example.com/submit"],
    ),
    (
        "xml://xml.example.com/notify?+Cookie=session%3DXc6Vb9Nm2Aq4&%252Bx-sig=Wd4Fg7",
        ["Xc6Vb9Nm2Aq4", "Wd4Fg7"],
        ["xml.example.com/notify"],
    ),
    (
        "mmosts://mattermost.example.com/Tk8Rq2Wm5Zx9Lp3Vb7Nc1Hd4",
        ["Tk8Rq2Wm5Zx9Lp3Vb7Nc1Hd4"],
        ["mattermost.example.com"],
    ),
    (
        "mmost://chat.example.com:8065/Wq3Er6Ty9Ui2Op5As8Df1Gh4/?channel=alerts",
        ["Wq3Er6Ty9Ui2Op5As8Df1Gh4"],
        ["chat.example.com:8065", "channel=alerts"],
    ),
    ("rockets://alerts:Rc7Ht2Lw9Qm4@rocket.example.com/#ops", ["Rc7Ht2Lw9Qm4"], ["/#ops"]),
    (
        "rocket://Kx8Bz3Qn6Wv1Mp4Tr7Ys2@rocket.example.com/#ops?avatar=no",
        ["Kx8Bz3Qn6Wv1Mp4Tr7Ys2"],
        ["rocket.example.com/#ops", "avatar=no"],
    ),
    ("pbul://o.gn5kj6nfhv736I7jC3cj3QLRiyhgl98b", ["o.gn5kj6nfhv736I7jC3cj3QLRiyhgl98b"], []),
    ("psafers://Ps8Kq3Wz6Lm1Xv4Bn7Rt?priority=high", ["Ps8Kq3Wz6Lm1Xv4Bn7Rt"], ["priority=high"]),
    (
        "zulip://alerts-bot@example.zulipchat.com/Zb7Qk2Wm9Lx4Pv6Tn3Rs8Hd1Fg5Jc0Y",
        ["Zb7Qk2Wm9Lx4Pv6Tn3Rs8Hd1Fg5Jc0Y"],
        ["alerts-bot@example.zulipchat.com"],
    ),
    (
        "opsgenie://3f8a1c2e-7b4d-4e9a-b6c1-9d2e5f7a8b0c/@oncall?region=eu",
        ["3f8a1c2e-7b4d-4e9a-b6c1-9d2e5f7a8b0c"],
        ["/@oncall", "region=eu"],
    ),
    (
        "pagerduty://Pd4Ik9Lo2Wq7Zx3Cv6Bn8M@Ak5Jl1Hm8Wn4Qr7Tb2Xy/",
        ["Pd4Ik9Lo2Wq7Zx3Cv6Bn8M", "Ak5Jl1Hm8Wn4Qr7Tb2Xy"],
        [],
    ),
    (
        "msteams://alertsteam/3f9b2c1d-8e7a-4b6c-9d0e-1f2a3b4c5d6e@6c5d4e3f-2a1b-4c0d-8e9f-7a6b5c4d3e2f"
        "/Wq8Zx3Lm6Np1Rt4Vb7Yc2Kd5Hs9Jf0Gu/8e7f6a5b-4c3d-4e2f-9a1b-0c9d8e7f6a5b/",
        [
            "3f9b2c1d-8e7a-4b6c-9d0e-1f2a3b4c5d6e",
            "6c5d4e3f-2a1b-4c0d-8e9f-7a6b5c4d3e2f",
            "Wq8Zx3Lm6Np1Rt4Vb7Yc2Kd5Hs9Jf0Gu",
            "8e7f6a5b-4c3d-4e2f-9a1b-0c9d8e7f6a5b",
        ],
        [],
    ),
    (
        "workflows://prod-00.westus.logic.azure.com:443/8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e1f"
        "/Sg5Kp8Lw2Qz7Xv4Nb1Mt6Ry3Hd9Jc0Fa?api-version=2016-06-01",
        ["8d2c4e6f1a3b5c7d9e0f2a4b6c8d0e1f", "Sg5Kp8Lw2Qz7Xv4Nb1Mt6Ry3Hd9Jc0Fa"],
        ["prod-00.westus.logic.azure.com:443", "api-version=2016-06-01"],
    ),
    (
        "apprises://apprise.example.com/Ap7Kq2Wz9Lm4Xv6B",
        ["Ap7Kq2Wz9Lm4Xv6B"],
        ["apprise.example.com"],
    ),
    (
        "signals://signal:Sg8Pw3Kz6Qm1@signal.example.com:8080/+15551234567/+15557654321",
        ["Sg8Pw3Kz6Qm1"],
        ["signal.example.com:8080/+15551234567/+15557654321"],
    ),
    (
        "sns://AKIAIOSFODNN7EXAMPLE/wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY/us-east-1/+15551234567",
        ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"],
        ["/us-east-1/+15551234567"],
    ),
    (
        "ses://alerts@example.com/AKIAJ7Q2W9Z4X6C8V1B3/Hx5Kq8Lw2Zm7Pv4Nb1Tr6Yc3Jd9Fs0Ga2Ek5Ui8"
        "/us-east-1/ops@example.com",
        ["AKIAJ7Q2W9Z4X6C8V1B3", "Hx5Kq8Lw2Zm7Pv4Nb1Tr6Yc3Jd9Fs0Ga2Ek5Ui8"],
        ["alerts@example.com/", "/us-east-1/ops@example.com"],
    ),
    ("ifttt://Ift7Kq2Wz9Lm4Xv6Bn8Rt3@alert_event", ["Ift7Kq2Wz9Lm4Xv6Bn8Rt3"], []),
    (
        "gchat://AAAA1BcDeFg/AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"
        "/Sp8Kq3Wz6Lm1Xv4Bn7Rt2Yc5Jd9Fs0Ga3Ek6Ui9Ho%3D",
        [
            "AAAA1BcDeFg",
            "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
            "Sp8Kq3Wz6Lm1Xv4Bn7Rt2Yc5Jd9Fs0Ga3",
        ],
        [],
    ),
    (
        "hassios://hass.example.com/eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJhYmMxMjMifQ.Qm8Zp3Xk7Wv2Lr5Tn1Ys4Bd6Hf9Jc0Ka",
        ["eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9", "Qm8Zp3Xk7Wv2Lr5Tn1Ys4Bd6Hf9Jc0Ka"],
        ["hass.example.com/"],
    ),
    (
        "hassio://192.168.1.20:8123/Ha7Kq2Wz9Lm4Xv6Bn8Rt3Yc5",
        ["Ha7Kq2Wz9Lm4Xv6Bn8Rt3Yc5"],
        ["192.168.1.20:8123"],
    ),
    (
        "json://localhost:8000/hook?+Authorization=Basic%20YWxlcnRzOlF4N3ZUOWtM",
        ["YWxlcnRzOlF4N3ZUOWtM"],
        ["localhost:8000/hook"],
    ),
    ("ntfy://[::1]:8080/alerts?auth=Nq5Wm8Zx2Lk4", ["Nq5Wm8Zx2Lk4"], ["[::1]:8080/alerts"]),
]

# What Apprise 2.x's url(privacy=True) gave for URLs like the ones above: header, query and
# payload values in the clear, Apprise's own `x...y`, `****` and `...abcd` forms elsewhere.
OLD_PRIVACY = [
    "discord://1...8/Q...K/?tts=no&avatar=yes&footer=no&footer_logo=yes&image=no&fields=yes"
    "&batch=yes&overflow=upstream&retry=0&wait=0.5&optional=no",
    "slack://T...2/A...D/T...Q/%23general/?image=yes&footer=yes&timestamp=yes&blocks=no"
    "&mode=hook&overflow=upstream&retry=0&wait=0.5&optional=no",
    "ntfys://t...j@ntfy.sh/my-alerts?priority=default&mode=private&image=yes&auth=token",
    "mailtos://alerts:****@gmail.com/ops%40example.com?overflow=upstream&smtp=smtp.gmail.com",
    "json://hooks.example.com/api/hook?method=POST&overflow=upstream&retry=0&wait=0.5"
    "&%2BAuthorization=Bearer%20Zq8Xv3Lp9Wk2&-apikey=Mn4Bv7Cx1Zq9&%3Asecret=Hj6Kl2Pz8Rt4",
    "pover://u...G@a...i//?priority=normal&sound=pushover&overflow=upstream",
    "matrixs://alerts:****@matrix.org/%23ops?image=no&mode=off&version=3&msgtype=text",
    "twilio://...abcd:Q...c@%2B15551234567/%2B15557654321/?overflow=upstream&method=sms",
    "sns://A...E/****/us-east-1/%2B15551234567/?overflow=upstream&format=text&mode=sms",
]


def leaks(secret: str, masked: str) -> list[str]:
    """The secret, or (for one longer than 8) any 3 of its consecutive characters, in `masked`."""
    if secret in masked:
        return [secret]
    if len(secret) <= 8:
        return []
    return [secret[i : i + 3] for i in range(len(secret) - 2) if secret[i : i + 3] in masked]


@pytest.mark.parametrize(("url", "secrets", "shown"), CASES, ids=[c[0][:24] for c in CASES])
def test_real_urls_hide_their_secrets_and_keep_the_target(
    url: str, secrets: list[str], shown: list[str]
) -> None:
    masked = mask_apprise_url(url)
    for secret in secrets:
        assert not leaks(secret, masked), (secret, masked)
    assert masked.startswith(url.split("://")[0] + "://")
    for part in shown:
        assert part in masked, (part, masked)


def test_the_table_covers_enough_services() -> None:
    assert len(CASES) >= 24
    assert len({url.split("://")[0].rstrip("s") for url, _, _ in CASES}) >= 24


@pytest.mark.parametrize("url", [c[0] for c in CASES] + OLD_PRIVACY)
def test_masking_is_idempotent(url: str) -> None:
    once = mask_apprise_url(url)
    assert mask_apprise_url(once) == once


def test_old_privacy_strings_lose_what_apprise_left_in_the_clear() -> None:
    masked = [mask_apprise_url(url) for url in OLD_PRIVACY]
    assert masked[0].startswith("discord://1...8/Q...K/?tts=no&avatar=yes")
    assert masked[3].startswith("mailtos://alerts:****@gmail.com/ops%40example.com?")
    for secret in ["Zq8Xv3Lp9Wk2", "Mn4Bv7Cx1Zq9", "Hj6Kl2Pz8Rt4"]:
        assert not leaks(secret, masked[4])
    assert "abcd" not in masked[7]  # Apprise's tail form shows 4 characters; ours at most 2


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("json://user:password1@example.com", "json://user:p...1@example.com"),
        ("json://user:short@example.com", "json://user:***@example.com"),
        ("JSON://example.com/a?+X=1", "json://example.com/a?+X=***"),
        ("json://gotify/hook", "json://***/hook"),
        ("ntfy://ntfy.sh/my-alerts", "ntfy://ntfy.sh/my-alerts"),
        ("json://[::1/x", "json://***/x"),
        ("mailto://user:pass/word@example.com", "mailto://***"),
        ("not a url", "***"),
        ("", "***"),
    ],
)
def test_masked_forms(url: str, expected: str) -> None:
    assert mask_apprise_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "   ",
        "://",
        "json://",
        "json://a@b@c@d:pw@e",
        "json://[[[]]]:x@@/%%%?&&==;;#",
        "é://x",
        "json://%zz%41%E2%82/%FF?%2B=%",
        "json://host/" + "a/" * 5000,
        "json://host/?" + "a=b&" * 5000,
        "json://u:" + "p" * 100_000 + "@host/x",
        "json://" + "Qx7vT9kLmN" * 20_000,
        "json://host/\x00\n\t\u2028/\U0001f600?x=\ud800",
    ],
)
def test_garbage_and_huge_input(url: str) -> None:
    masked = mask_apprise_url(url)
    assert len(masked) < 8192
    assert mask_apprise_url(masked) == masked
    assert "pppp" not in masked and "Qx7" not in masked


@given(st.text(max_size=400))
def test_any_text_is_masked_without_error_and_idempotently(text: str) -> None:
    masked = mask_apprise_url(text)
    assert mask_apprise_url(masked) == masked


URLISH = st.builds(
    lambda scheme, rest: f"{scheme}://{rest}",
    st.sampled_from(["json", "ntfys", "discord", "tgram", "mailtos"]),
    st.text(alphabet="aZ09:/@?&;=#%+-[]._~ *\x00é", max_size=160),
)


@given(URLISH)
def test_url_shaped_text_is_masked_idempotently(url: str) -> None:
    masked = mask_apprise_url(url)
    assert mask_apprise_url(masked) == masked


LABEL = st.from_regex(r"[a-z]{1,10}", fullmatch=True)
SECRET_CHARS = string.ascii_uppercase + string.digits + "!$&'()+,;=:@/?#[] %-_~"


@st.composite
def url_with_secret(draw: st.DrawFn) -> tuple[str, str]:
    """A URL of lowercase words with one secret (upper case, digits, punctuation) planted."""
    scheme = draw(st.sampled_from(["json", "jsons", "ntfy", "gotifys", "mailtos", "apprises"]))
    host = ".".join(draw(st.lists(LABEL, min_size=2, max_size=3)))
    path = "".join("/" + word for word in draw(st.lists(LABEL, max_size=3)))
    slot = draw(st.sampled_from(["password", "header", "segment", "key"]))
    if slot == "segment":
        secret = draw(st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=40))
    else:
        secret = draw(st.text(SECRET_CHARS, min_size=3, max_size=40))
    encoded = quote(secret, safe="")
    if slot == "password":
        return f"{scheme}://{draw(LABEL)}:{encoded}@{host}{path}?format=markdown", secret
    if slot == "segment":
        return f"{scheme}://{host}{path}/{secret}?format=markdown", secret
    if slot == "header":
        key = draw(st.sampled_from(["+x-token", "%2bauthorization", "-apikey", ":secret", "%3ax"]))
        return f"{scheme}://{host}{path}?format=markdown&{key}={encoded}", secret
    key = draw(st.sampled_from(["token", "api_key", "password", "client_secret", "sig"]))
    return f"{scheme}://{host}{path}?{key}={encoded}&avatar=no", secret


@given(url_with_secret())
def test_a_planted_secret_never_shows(case: tuple[str, str]) -> None:
    url, secret = case
    masked = mask_apprise_url(url)
    assert mask_apprise_url(masked) == masked
    for shown in (secret, quote(secret, safe="")):
        # Everything else is lower case: 3 characters with a capital or digit are the secret's.
        windows = {shown[i : i + 3] for i in range(len(shown) - 2)}
        leaked = [w for w in windows if re.search("[A-Z0-9]", w) and w in masked]
        assert not leaked, (url, masked, leaked)
    assert len(re.findall("[A-Z]", masked)) <= 2
