"""Compatibility module: the per-op profiler is `el_larq.deploy.profile`."""

from el_larq.deploy.profile import (  # noqa: F401  (re-exported)
    OpTime,
    Profile,
    as_if_trained,
    format_profile,
    parse_op_profile,
    profile_host,
)

__all__ = [
    "OpTime",
    "Profile",
    "as_if_trained",
    "format_profile",
    "parse_op_profile",
    "profile_host",
]
