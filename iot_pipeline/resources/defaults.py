"""How a resource setting is bound to the environment, and the S3 client every S3 caller shares.

A setting whose environment variable is set is bound as ``dg.EnvVar`` (the UI then shows where the
value comes from and secrets never land in run config); otherwise the local default applies, so a
fresh checkout runs with no configuration at all. Every variable is listed in ``.env.example``; the
resources themselves are bound in ``iot_pipeline/bindings.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from iot_pipeline.storage.s3 import DEFAULT_REGION


class EnvSettingError(ValueError):
    """An environment variable holds a value its setting cannot take; the message names it."""


def env_or(name: str, default: Any) -> Any:
    """A string setting: ``dg.EnvVar`` when the variable is set, else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _parsed(name: str, parse: Callable[[str], Any], kind: str, minimum: float | None) -> Any:
    raw = os.environ[name].strip()
    try:
        value = parse(raw)
    except ValueError:
        raise EnvSettingError(f"{name}={raw!r} is not {kind}.") from None
    if minimum is not None and value < minimum:
        raise EnvSettingError(f"{name}={raw!r} must be >= {minimum:g}.")
    return value


def env_int_or(name: str, default: int, minimum: int | None = None) -> Any:
    """An integer setting bound as ``dg.EnvVar.int`` (an ``EnvVar`` is a string: an int field rejects
    it). The value is checked when the code location loads, so a bad one fails there, named."""
    if not os.environ.get(name):
        return default
    _parsed(name, int, "an integer", minimum)
    return dg.EnvVar.int(name)


def env_float_or(name: str, default: float, minimum: float | None = None) -> float:
    """A number setting. Dagster has no float ``EnvVar`` (its config knows string, int and bool
    sources only), so the value is parsed here, when the code location loads."""
    if not os.environ.get(name):
        return default
    return float(_parsed(name, float, "a number", minimum))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(text: str) -> bool:
    if text.lower() not in _TRUE | _FALSE:
        raise ValueError(text)
    return text.lower() in _TRUE


def env_bool_or(name: str, default: bool) -> bool:
    """A boolean setting: 1/0, true/false, yes/no, on/off (any case), parsed when the code loads."""
    if not os.environ.get(name):
        return default
    return bool(_parsed(name, _bool, "a boolean (true/false, 1/0, yes/no, on/off)", None))


def s3_resource() -> S3Resource:
    """dagster-aws's S3 client for what Spark does not do: partition listings, bucket setup, CSV exports.

    Unused while the lake is local. Credentials come from boto3's chain (AWS_* variables, profile, role).
    """
    return S3Resource(
        endpoint_url=env_or("IOT_S3_ENDPOINT", None),
        region_name=env_or("AWS_REGION", DEFAULT_REGION),
        max_attempts=3,
    )
