"""One configuration source: each default declared once, one S3 binding, one way to build an S3 client,
and the Pandera column checks derived from the contract's field declarations."""

from __future__ import annotations

import math

import dagster as dg
import pytest

from iot_pipeline.contract.event import EVENT_FIELDS, FieldType
from iot_pipeline.contract.pandera_schema import contract_columns
from iot_pipeline.resources.bound import bound_resources, bound_s3
from iot_pipeline.resources.spark import SparkResource
from iot_pipeline.sensors import sensor_resources
from iot_pipeline.storage.s3 import DEFAULT_REGION, ENDPOINT_ENV, s3_client


def test_the_spark_resource_takes_the_storage_modules_default_region() -> None:
    assert SparkResource().s3_region == DEFAULT_REGION


@pytest.mark.parametrize("endpoint", ["", "http://127.0.0.1:9000"])
def test_the_sensors_take_the_code_locations_s3_binding(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, endpoint)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    sensors, assets = sensor_resources()["s3"], bound_resources()["s3"]
    assert sensors == assets == bound_s3()
    # Bound as EnvVars (the UI shows the variable), not as the values read now.
    assert isinstance(sensors.region_name, dg.EnvVar) and sensors.region_name.env_var_name == "AWS_REGION"


def test_an_s3_client_with_explicit_keys_ignores_the_process_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env-secret")
    own = s3_client("http://127.0.0.1:9000", path_style=True, credentials=("own", "own-secret"))
    env = s3_client("http://127.0.0.1:9000", path_style=True)
    assert own._request_signer._credentials.access_key == "own"
    assert env._request_signer._credentials.access_key == "from-env"
    for client in (own, env):
        assert client.meta.endpoint_url == "http://127.0.0.1:9000"
        assert client.meta.region_name == DEFAULT_REGION
        assert client.meta.config.s3["addressing_style"] == "path"


def test_the_pandera_column_checks_are_the_contract_field_declarations() -> None:
    columns = contract_columns()
    for field in EVENT_FIELDS:
        column = columns[field.name]
        stats = {check.name: check.statistics for check in column.checks}
        assert column.nullable is not field.required, field.name
        if field.type is FieldType.NUMBER:
            in_range = stats.pop("in_range")
            low, high = in_range["min_value"], in_range["max_value"]
            assert low == (-math.inf if field.minimum is None else field.minimum), field.name
            assert high == (math.inf if field.maximum is None else field.maximum), field.name
            # An open bound excludes the infinities: every number must also be finite.
            assert in_range["include_min"] is (field.minimum is not None)
            assert in_range["include_max"] is (field.maximum is not None)
        if field.allowed:
            assert list(stats.pop("isin")["allowed_values"]) == list(field.allowed), field.name
        if field.non_empty:
            assert stats.pop("str_length")["min_value"] == 1, field.name
        assert not stats, f"{field.name}: checks not declared by the contract: {sorted(stats)}"
