"""The lake on S3 or an S3-compatible server (MinIO): Spark's S3A settings, boto3 clients, a fail-fast check.

One set of knobs serves AWS and MinIO alike: ``endpoint`` (None = AWS's regional endpoint, else e.g.
``http://127.0.0.1:9000`` from ``IOT_S3_ENDPOINT``), ``region`` and ``path_style`` (True for MinIO).
Credentials are never configuration: Spark (S3A) and boto3 read the standard AWS variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``) or, on AWS, profiles and
instance/container roles.
"""

from __future__ import annotations

import glob
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyspark

from iot_pipeline.storage.layout import ROOT_ENV, LakeConfigError, is_local, local_path

ENDPOINT_ENV = "IOT_S3_ENDPOINT"
DEFAULT_REGION = "us-east-1"

# AWS SDK v2 bundle that each hadoop-aws release pins (property aws-java-sdk-v2.version of the
# hadoop-project parent POM); a test compares this with the POM in ~/.m2.
AWS_SDK_V2_BY_HADOOP = {"3.5.0": "2.35.4", "3.4.2": "2.29.52", "3.4.1": "2.24.6"}

# Environment variables first (what our docs and tests set), then the SDK's default chain: profiles,
# web identity (EKS), container and instance roles on AWS.
DEFAULT_CREDENTIALS_PROVIDERS = (
    "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
    "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",
)


class S3ConfigError(LakeConfigError):
    """The object store rejected our settings; the message names the setting to fix."""


def client_env(
    endpoint: str, access_key: str, secret_key: str, region: str = DEFAULT_REGION
) -> dict[str, str]:
    """The variables that point the pipeline's S3 clients (Spark's S3A, boto3, pyarrow) at a server:
    merge into a process's environment."""
    return {
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_REGION": region,
        ENDPOINT_ENV: endpoint,
    }


def bundled_hadoop_version(jars_dir: str | None = None) -> str:
    """Hadoop version of the installed PySpark, read from its ``hadoop-client-api-<v>.jar``."""
    jars_dir = jars_dir or os.path.join(os.path.dirname(pyspark.__file__), "jars")
    for jar in sorted(glob.glob(os.path.join(jars_dir, "hadoop-client-api-*.jar"))):
        match = re.search(r"hadoop-client-api-(\d+\.\d+\.\d+)\.jar$", jar)
        if match:
            return match.group(1)
    raise RuntimeError(
        f"No hadoop-client-api-<version>.jar in {jars_dir}: is PySpark installed with its jars?"
    )


def aws_sdk_version_from_pom(hadoop_version: str, m2_repository: Path | None = None) -> str:
    """``aws-java-sdk-v2.version`` from the cached ``hadoop-project`` POM (the parent of hadoop-aws)."""
    repo = m2_repository or Path.home() / ".m2" / "repository"
    pom = repo / "org/apache/hadoop/hadoop-project" / hadoop_version / f"hadoop-project-{hadoop_version}.pom"
    if not pom.exists():
        raise RuntimeError(f"{pom} is missing: prefetch org.apache.hadoop:hadoop-aws:{hadoop_version} first.")
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:aws-java-sdk-v2.version", namespace)
    if node is None or not node.text:
        raise RuntimeError(f"{pom} has no aws-java-sdk-v2.version property")
    return node.text.strip()


def hadoop_aws_packages(hadoop_version: str | None = None) -> list[str]:
    """Maven coordinates for ``spark.jars.packages``: hadoop-aws matching PySpark's Hadoop, and its SDK.

    hadoop-aws depends on the SDK bundle itself; naming it too makes the pin visible and lets setup
    prefetch exactly these two coordinates.
    """
    hadoop_version = hadoop_version or bundled_hadoop_version()
    sdk = AWS_SDK_V2_BY_HADOOP.get(hadoop_version) or aws_sdk_version_from_pom(hadoop_version)
    return [f"org.apache.hadoop:hadoop-aws:{hadoop_version}", f"software.amazon.awssdk:bundle:{sdk}"]


def s3a_spark_conf(
    endpoint: str | None = None,
    region: str = DEFAULT_REGION,
    path_style: bool = False,
    *,
    credentials_providers: tuple[str, ...] = DEFAULT_CREDENTIALS_PROVIDERS,
    connection_timeout_ms: int = 20_000,
    max_attempts: int = 3,
) -> dict[str, str]:
    """Spark settings (``spark.hadoop.fs.s3a.*``) for S3A; pass them at session start.

    No secrets here: the providers read credentials from the environment of the driver and executors.
    The checksum settings are Hadoop 3.5's compatible defaults written out, because the AWS SDK >= 2.30
    otherwise sends new checksum headers that older S3-compatible servers reject. Retries are bounded so
    a wrong endpoint fails in seconds, not minutes.
    """
    hadoop = {
        "fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        # Streaming checkpoints go through FileContext, which needs the AbstractFileSystem binding.
        "fs.AbstractFileSystem.s3a.impl": "org.apache.hadoop.fs.s3a.S3A",
        "fs.s3a.aws.credentials.provider": ",".join(credentials_providers),
        "fs.s3a.endpoint.region": region,
        "fs.s3a.path.style.access": str(path_style).lower(),
        "fs.s3a.checksum.generation": "false",
        "fs.s3a.request.md5.header": "true",
        "fs.s3a.connection.timeout": str(connection_timeout_ms),
        "fs.s3a.attempts.maximum": str(max_attempts),
        "fs.s3a.retry.limit": str(max_attempts),
    }
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise S3ConfigError(
                f"{ENDPOINT_ENV}={endpoint!r}: expected http(s)://host:port, e.g. http://127.0.0.1:9000."
            )
        hadoop["fs.s3a.endpoint"] = endpoint
        hadoop["fs.s3a.connection.ssl.enabled"] = str(parsed.scheme == "https").lower()
    return {f"spark.hadoop.{key}": value for key, value in hadoop.items()}


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3a://bucket/a/b`` -> ``("bucket", "a/b")``."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("s3", "s3a") or not parsed.netloc:
        raise S3ConfigError(f"{ROOT_ENV}={uri!r}: expected s3a://bucket/prefix.")
    return parsed.netloc, parsed.path.strip("/")


def s3_client_kwargs(
    endpoint: str | None = None, region: str = DEFAULT_REGION, path_style: bool = False
) -> dict[str, Any]:
    """Keyword arguments for ``boto3.client("s3", **kwargs)`` matching :func:`s3a_spark_conf`."""
    from botocore.config import Config

    return {
        "endpoint_url": endpoint or None,
        "region_name": region,
        "config": Config(
            s3={"addressing_style": "path" if path_style else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            # Same reason as the S3A checksum settings: only send checksums the operation requires.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    }


def s3_client(
    endpoint: str | None = None,
    region: str = DEFAULT_REGION,
    path_style: bool = False,
    *,
    credentials: tuple[str, str] | None = None,
) -> Any:
    """A client on a fresh boto3 session: the default session caches credentials from its first use.

    ``credentials`` (access key, secret) is for a caller that started the server itself (a test's or a
    fault drill's MinIO) and must not depend on the process's AWS variables; the pipeline leaves it out.
    """
    import boto3

    keys: dict[str, str] = {}
    if credentials is not None:
        keys = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]}
    return boto3.session.Session(**keys).client("s3", **s3_client_kwargs(endpoint, region, path_style))


def pyarrow_filesystem(endpoint: str | None = None, region: str = DEFAULT_REGION) -> Any:
    """A ``pyarrow.fs.S3FileSystem`` on the same server (credentials from the AWS variables)."""
    from pyarrow import fs

    kwargs: dict[str, Any] = {"region": region}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    return fs.S3FileSystem(**kwargs)


def lake_filesystem(uri: str) -> tuple[Any, str]:
    """A pyarrow filesystem and the path within it for a local or ``s3a://`` lake URI.

    S3 settings come from the same environment as Spark's (``IOT_S3_ENDPOINT``, ``AWS_REGION``, the
    standard AWS credential variables).
    """
    from pyarrow import fs

    if is_local(uri):
        return fs.LocalFileSystem(), filesystem_path(uri)
    s3 = pyarrow_filesystem(
        os.environ.get(ENDPOINT_ENV) or None, os.environ.get("AWS_REGION") or DEFAULT_REGION
    )
    return s3, filesystem_path(uri)


def filesystem_path(uri: str) -> str:
    """The path of a lake URI within the filesystem ``lake_filesystem`` gives for the lake."""
    if is_local(uri):
        return local_path(uri)
    bucket, key = split_s3_uri(uri)
    return f"{bucket}/{key}".rstrip("/")


_CREDENTIAL_HINTS = {
    "InvalidAccessKeyId": "the access key is unknown to the server: check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the secret does not match the access key: check AWS_SECRET_ACCESS_KEY",
    "InvalidToken": "the session token is invalid: check AWS_SESSION_TOKEN",
    "ExpiredToken": "the session token expired: refresh AWS_SESSION_TOKEN",
    "AccessDenied": "the credentials may not list this bucket: check the policy of AWS_ACCESS_KEY_ID",
}


def check_bucket(
    root: str,
    endpoint: str | None = None,
    region: str = DEFAULT_REGION,
    path_style: bool = False,
    *,
    client: Any = None,
) -> None:
    """Fail fast, before Spark starts, if the lake root's bucket cannot be listed with our credentials.

    S3A reports these as generic ``AccessDeniedException``s deep in a Spark stack trace; this check
    names the setting to fix instead. It lists at most one key under the prefix (the cheapest
    authenticated call that needs the same ListBucket right the pipeline needs).
    """
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    bucket, prefix = split_s3_uri(root)
    where = f"at {endpoint} ({ENDPOINT_ENV})" if endpoint else f"on AWS S3, region {region} (AWS_REGION)"
    client = client or s3_client(endpoint, region, path_style)
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except NoCredentialsError as exc:
        raise S3ConfigError(
            f"No AWS credentials for {root}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        ) from exc
    except EndpointConnectionError as exc:
        raise S3ConfigError(
            f"Cannot reach the S3 endpoint {where}: is {ENDPOINT_ENV} right and the server up?"
        ) from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise S3ConfigError(
                f"Bucket {bucket!r} of {ROOT_ENV}={root} does not exist {where}: create it "
                f"(e.g. `aws s3 mb s3://{bucket}`) or fix {ROOT_ENV}."
            ) from exc
        if code in _CREDENTIAL_HINTS:
            raise S3ConfigError(f"S3 refused {root} {where}: {_CREDENTIAL_HINTS[code]} ({code}).") from exc
        if code in (
            "PermanentRedirect",
            "AuthorizationHeaderMalformed",
            "IllegalLocationConstraintException",
        ):
            raise S3ConfigError(
                f"Bucket {bucket!r} is in another region than {region!r}: set AWS_REGION ({code})."
            ) from exc
        raise S3ConfigError(f"S3 error for {root} {where}: {code or exc}") from exc


def s3_resource(setting: Callable[[str], Any] | None = None) -> Any:
    """dagster-aws ``S3Resource`` on ``IOT_S3_ENDPOINT`` (unset = AWS) and ``AWS_REGION``: the one S3
    client of what Spark does not do (partition listings, bucket setup, the CSV export).

    ``setting(name)`` gives a variable's value, None when unset: the code location passes
    ``resources.env.env_str`` (bound as ``EnvVar``); code outside Dagster (shells, tests, the local
    stack) leaves it out and the values are read now. Credentials are not passed: boto3 finds them
    (AWS_* variables, profile, instance/container role).
    """
    from dagster_aws.s3 import S3Resource

    def read_now(name: str) -> str | None:
        return os.environ.get(name) or None

    value = setting or read_now
    return S3Resource(
        endpoint_url=value(ENDPOINT_ENV), region_name=value("AWS_REGION") or DEFAULT_REGION, max_attempts=3
    )


def put_text(uri: str, text: str, s3: Any = None, content_type: str = "text/plain") -> None:
    """Write one small text object (the per-day CSV export) through dagster-aws's S3 client.

    ``s3`` is the code location's ``S3Resource``; without one it is built from the environment.
    """
    bucket, key = split_s3_uri(uri)
    client = (s3 if s3 is not None else s3_resource()).get_client()
    client.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)
