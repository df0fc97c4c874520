"""S3Emulator: moto's server on 127.0.0.1, reachable by boto3 through its endpoint and env."""

from __future__ import annotations

import secrets
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import boto3
import pytest
from local.cli_imports import hide_module

from dagster_pipes_cloud.adapters import MissingDependencyError
from dagster_pipes_cloud.local import S3Emulator

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def s3_client(emulator: S3Emulator) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=emulator.endpoint_url,
        region_name=emulator.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_put_get_list(s3_emulator: S3Emulator) -> None:
    client = s3_client(s3_emulator)
    bucket = f"test-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)
    for index in (1, 2, 10):
        client.put_object(Bucket=bucket, Key=f"prefix/{index}.json", Body=b'{"n": %d}' % index)

    assert client.get_object(Bucket=bucket, Key="prefix/10.json")["Body"].read() == b'{"n": 10}'
    listed = client.list_objects_v2(Bucket=bucket, Prefix="prefix/")
    assert sorted(item["Key"] for item in listed["Contents"]) == [
        "prefix/1.json",
        "prefix/10.json",
        "prefix/2.json",
    ]


def test_endpoint_is_on_localhost(s3_emulator: S3Emulator) -> None:
    url = urlsplit(s3_emulator.endpoint_url)
    assert (url.scheme, url.hostname) == ("http", "127.0.0.1")
    assert s3_emulator.region == "us-east-1"


def test_env_is_enough_for_a_default_client(
    s3_emulator: S3Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_emulator.env.items():
        monkeypatch.setenv(name, value)
    assert s3_emulator.env["AWS_ENDPOINT_URL_S3"] == s3_emulator.endpoint_url
    # only S3's endpoint: the general one would send Lambda (and every other service) to moto
    assert "AWS_ENDPOINT_URL" not in s3_emulator.env
    bucket = f"env-{secrets.token_hex(4)}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3_client(s3_emulator).list_buckets()["Buckets"]]


def test_stop_ends_the_server() -> None:
    with S3Emulator() as emulator:
        port = urlsplit(emulator.endpoint_url).port
        assert port is not None
        s3_client(emulator).list_buckets()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_endpoint_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not been started"):
        _ = S3Emulator().endpoint_url


def test_create_bucket(s3_emulator: S3Emulator) -> None:
    bucket = f"made-{secrets.token_hex(4)}"
    s3_emulator.create_bucket(bucket)
    s3_emulator.create_bucket(bucket)  # again: no error
    assert bucket in [b["Name"] for b in s3_client(s3_emulator).list_buckets()["Buckets"]]


def test_without_moto_the_install_line_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_module(monkeypatch, "moto")
    with pytest.raises(MissingDependencyError) as raised:
        S3Emulator()
    assert "moto" in str(raised.value)
    assert "pip install 'dagster-pipes-cloud[local]'" in str(raised.value)
