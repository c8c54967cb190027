"""How a resource setting is bound to the environment.

A setting whose environment variable is set is bound as ``dg.EnvVar`` (the UI then shows where the
value comes from, and secrets never land in run config); a setting whose variable is unset is left
out (:func:`bound`), so the resource's own field default applies. Each default is therefore declared
once, on its resource's field, and a fresh checkout runs with no configuration at all. Every variable
is listed in ``.env.example``; the resources themselves are bound in ``resources/bound.py`` and
``streaming/resource.py`` and gathered in ``iot_pipeline/bindings.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

R = TypeVar("R", bound=dg.ConfigurableResource)
# dg.EnvVar and the int variant dg.EnvVar.int returns (its class is not exported)
_ENV_VARS = (dg.EnvVar, type(dg.EnvVar.int("_")))


class EnvSettingError(ValueError):
    """An environment variable holds a value its setting cannot take; the message names it."""


def bound(**settings: Any) -> dict[str, Any]:
    """Keyword arguments for a resource: the settings whose variable is set (the others are None)."""
    return {name: value for name, value in settings.items() if value is not None}


def env_str(name: str) -> dg.EnvVar | None:
    """A string setting: ``dg.EnvVar`` when the variable is set, else None (the field's default)."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def _parsed(name: str, parse: Callable[[str], Any], kind: str, minimum: float | None) -> Any:
    raw = os.environ[name].strip()
    try:
        value = parse(raw)
    except ValueError:
        raise EnvSettingError(f"{name}={raw!r} is not {kind}.") from None
    if minimum is not None and value < minimum:
        raise EnvSettingError(f"{name}={raw!r} must be >= {minimum:g}.")
    return value


def env_int(name: str, minimum: int | None = None) -> Any:
    """An integer setting bound as ``dg.EnvVar.int`` (an ``EnvVar`` is a string: an int field rejects
    it). The value is checked when the code location loads, so a bad one fails there, named."""
    if not os.environ.get(name):
        return None
    _parsed(name, int, "an integer", minimum)
    return dg.EnvVar.int(name)


def env_float(name: str, minimum: float | None = None) -> float | None:
    """A number setting. Dagster has no float ``EnvVar`` (its config knows string, int and bool
    sources only), so the value is parsed here, when the code location loads."""
    if not os.environ.get(name):
        return None
    return float(_parsed(name, float, "a number", minimum))


def settings_of(resource: dg.ConfigurableResource) -> dict[str, Any]:
    return {name: getattr(resource, name) for name in type(resource).model_fields}


def resolved(resource: R) -> R:
    """The resource with every environment-bound field read now, nested resources included: what
    code outside a Dagster run (the command-line tools) uses of the code location's bindings."""
    values = {}
    for name, value in settings_of(resource).items():
        if isinstance(value, _ENV_VARS):
            value = value.get_value()
        elif isinstance(value, dg.ConfigurableResource):
            value = resolved(value)
        values[name] = value
    return type(resource)(**values)


def with_settings(resource: R, **settings: Any) -> R:
    """The resource with the given settings replaced; None leaves a setting as it is."""
    return type(resource)(**{**settings_of(resource), **bound(**settings)})
