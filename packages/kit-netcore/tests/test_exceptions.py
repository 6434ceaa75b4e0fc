"""The error hierarchy: statuses, problem objects, fixed 5xx details, Retry-After."""

from __future__ import annotations

import errno

import pytest

from kit_netcore.exceptions import (
    BackendError,
    ClientBlocked,
    ClientRateLimited,
    ConfigurationError,
    InterfaceNotFound,
    InvalidRule,
    KitNetcoreError,
    NetcorePermissionError,
    ShieldFull,
    ShieldNotFound,
)

ALL: list[type[KitNetcoreError]] = [
    ConfigurationError,
    InvalidRule,
    NetcorePermissionError,
    InterfaceNotFound,
    ShieldNotFound,
    ShieldFull,
    BackendError,
    ClientBlocked,
    ClientRateLimited,
]


@pytest.mark.parametrize(
    ("cls", "status", "builtin"),
    [
        (ConfigurationError, 500, ValueError),
        (InvalidRule, 422, ValueError),
        (NetcorePermissionError, 500, PermissionError),
        (InterfaceNotFound, 404, ValueError),
        (ShieldNotFound, 404, LookupError),
        (ShieldFull, 507, KitNetcoreError),
        (BackendError, 503, KitNetcoreError),
        (ClientBlocked, 403, KitNetcoreError),
        (ClientRateLimited, 429, KitNetcoreError),
    ],
)
def test_status_and_builtin_base(cls: type[KitNetcoreError], status: int, builtin: type) -> None:
    error = cls("message")
    assert isinstance(error, KitNetcoreError)
    assert isinstance(error, builtin)
    assert error.status == status
    problem = error.problem()
    assert problem["status"] == status
    assert problem["type"] == f"https://kit.dev/problems/{cls.slug}"
    assert problem["title"] == cls.title


EVERY: list[type[KitNetcoreError]] = [KitNetcoreError, *ALL]


def test_slugs_are_distinct() -> None:
    slugs = [cls.slug for cls in EVERY]
    assert len(set(slugs)) == len(slugs)


@pytest.mark.parametrize("cls", [c for c in EVERY if c("x").status >= 500])
def test_server_errors_never_show_their_message(cls: type[KitNetcoreError]) -> None:
    secret = "bpf_obj_get(/sys/fs/bpf/kit_netcore/eth0/nc_block4) failed"
    detail = cls(secret).problem()["detail"]
    assert "nc_block4" not in detail
    assert "eth0" not in detail
    assert detail.endswith(".")


@pytest.mark.parametrize("cls", [c for c in ALL if c("x").status < 500])
def test_client_errors_show_their_message(cls: type[KitNetcoreError]) -> None:
    assert cls("what went wrong").problem()["detail"] == "what went wrong"


def test_permission_error_names_what_is_needed() -> None:
    message = str(NetcorePermissionError("loading the shield on eth0 was refused"))
    assert message == (
        "loading the shield on eth0 was refused: attaching XDP needs root or CAP_BPF + "
        "CAP_NET_ADMIN (CAP_SYS_ADMIN on kernels < 5.8)"
    )
    assert str(NetcorePermissionError()).startswith("attaching XDP needs root")
    # already said: not said twice
    assert str(NetcorePermissionError(message)) == message


def test_backend_error_carries_errno_either_sign() -> None:
    for code in (errno.ENOMEM, -errno.ENOMEM):
        error = BackendError("bpf_map_update_elem(nc_block4)", errno=code)
        assert error.errno == errno.ENOMEM
        assert error.strerror == "Cannot allocate memory"
        assert str(error) == (
            "bpf_map_update_elem(nc_block4) (ENOMEM, errno 12: Cannot allocate memory)"
        )
    plain = BackendError("the shield's maps are closed")
    assert plain.errno is None
    assert str(plain) == "the shield's maps are closed"


def test_rate_limited_retry_after_header_and_member() -> None:
    error = ClientRateLimited(retry_after=0.01)
    assert error.headers() == {"Retry-After": "1"}
    assert error.problem()["retry_after"] == 0.01
    assert ClientRateLimited(retry_after=2.1).headers() == {"Retry-After": "3"}
    unknown = ClientRateLimited()
    assert unknown.retry_after is None
    assert unknown.headers() == {}
    assert "retry_after" not in unknown.problem()
    for nonsense in (float("nan"), float("inf"), -1.0):
        assert ClientRateLimited(retry_after=nonsense).retry_after is None


def test_default_messages_of_client_refusals() -> None:
    assert ClientBlocked().problem()["detail"] == "Requests from your address are blocked."
    assert str(ClientRateLimited()).startswith("Too many requests")
    assert ClientBlocked().headers() == {}
