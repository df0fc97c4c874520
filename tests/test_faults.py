"""FaultProxy before gcp-storage-emulator: passthrough, scripted and seeded faults, stopping."""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from support.faults import DROP, LOST_ANSWER, Fault, FaultProxy, gcs_error

from dagster_pipes_cloud.local.gcs import GCSEmulator


@pytest.fixture
def bucket(gcs_emulator: GCSEmulator) -> str:
    name = f"faults-{secrets.token_hex(4)}"
    gcs_emulator.create_bucket(name)
    return name


@pytest.fixture
def proxy(gcs_emulator: GCSEmulator) -> Iterator[FaultProxy]:
    with FaultProxy(gcs_emulator.endpoint_url) as proxy:
        yield proxy


def connect(proxy: FaultProxy) -> http.client.HTTPConnection:
    host, port = proxy.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def upload_path(bucket: str, key: str) -> str:
    return f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={key}"


def download_path(bucket: str, key: str) -> str:
    return f"/download/storage/v1/b/{bucket}/o/{key}?alt=media"


def call(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    encode_chunked: bool = False,
) -> tuple[int, bytes, http.client.HTTPResponse]:
    connection.request(method, path, body, dict(headers or {}), encode_chunked=encode_chunked)
    response = connection.getresponse()
    return response.status, response.read(), response


def test_requests_and_answers_pass_through(bucket: str, proxy: FaultProxy) -> None:
    connection = connect(proxy)
    body = b'{"message": "hello"}'
    # kept by the emulator as the blob's type (not JSON: its media upload would parse the body)
    headers = {"Content-Type": "text/x-pipes"}
    status, _, _ = call(
        connection, "POST", upload_path(bucket, "a.json"), body=body, headers=headers
    )
    assert status == 200
    status, data, response = call(connection, "GET", download_path(bucket, "a.json"))
    assert (status, data) == (200, body)
    assert response.getheader("Content-Type") == "text/x-pipes"
    assert response.getheader("x-goog-hash", "").startswith("crc32c=")
    status, _, _ = call(connection, "GET", download_path(bucket, "missing.json"))
    assert status == 404
    assert proxy.counts == {"POST": 1, "GET": 2}
    assert [r.status for r in proxy.requests] == [200, 200, 404]
    assert not proxy.injected


def test_a_chunked_request_body_arrives_whole(bucket: str, proxy: FaultProxy) -> None:
    connection = connect(proxy)
    parts = [b"first part, ", b"second part, ", b"last"]
    status, _, _ = call(
        connection,
        "POST",
        upload_path(bucket, "chunked.txt"),
        body=iter(parts),
        headers={"Content-Type": "text/plain"},
        encode_chunked=True,
    )
    assert status == 200
    assert call(connection, "GET", download_path(bucket, "chunked.txt"))[1] == b"".join(parts)


def test_the_client_connection_is_kept_alive(bucket: str, proxy: FaultProxy) -> None:
    connection = connect(proxy)
    call(connection, "POST", upload_path(bucket, "k.json"), body=b"{}")
    sock = connection.sock
    assert sock is not None
    for _ in range(3):
        assert call(connection, "GET", download_path(bucket, "k.json"))[0] == 200
        assert connection.sock is sock  # the same connection, not a new one each time


def test_the_sdk_resumable_upload_comes_back_through_the_proxy(
    bucket: str, proxy: FaultProxy
) -> None:
    """The emulator builds the upload session URL from `Host`, which the proxy passes on."""
    client = storage.Client(
        project="p",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": proxy.url},
    )
    blob = client.bucket(bucket).blob("big.bin")
    data = secrets.token_bytes(600 * 1024)
    with blob.open("wb", chunk_size=256 * 1024) as writer:
        writer.write(data)
    assert blob.download_as_bytes() == data
    parts = [r.status for r in proxy.requests if r.method == "PUT"]
    assert parts == [308, 308, 200]  # three 256 KiB parts, each through the proxy


def test_scripted_faults_come_first_and_in_order(bucket: str, proxy: FaultProxy) -> None:
    connection = connect(proxy)
    call(connection, "POST", upload_path(bucket, "s.json"), body=b"{}")
    proxy.reset()
    proxy.script([None, gcs_error(503), None, Fault(500, b"plain", {"Content-Type": "text/plain"})])
    statuses = [call(connection, "GET", download_path(bucket, "s.json"))[0] for _ in range(5)]
    assert statuses == [200, 503, 200, 500, 200]
    assert proxy.injected == {"GET": 2}
    assert [r.injected for r in proxy.requests] == [False, True, False, True, False]


def test_the_default_fault_is_a_gcs_shaped_503(bucket: str, proxy: FaultProxy) -> None:
    proxy.fail_next()
    status, data, response = call(connect(proxy), "GET", download_path(bucket, "x"))
    assert status == 503
    assert response.getheader("Content-Type", "").startswith("application/json")
    assert json.loads(data)["error"]["code"] == 503


def test_probability_is_deterministic_for_a_seed(bucket: str, gcs_emulator: GCSEmulator) -> None:
    def statuses(seed: int) -> list[int]:
        with FaultProxy(gcs_emulator.endpoint_url, probability=0.5, seed=seed) as proxy:
            connection = connect(proxy)
            return [call(connection, "GET", download_path(bucket, "x"))[0] for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {404, 503}  # some forwarded (no such blob), some faulted
    assert first != statuses(8)


def test_where_limits_the_faults(bucket: str, proxy: FaultProxy) -> None:
    proxy.where = lambda method, path: method == "GET"
    proxy.probability = 1.0
    connection = connect(proxy)
    assert call(connection, "POST", upload_path(bucket, "w.json"), body=b"{}")[0] == 200
    assert call(connection, "GET", download_path(bucket, "w.json"))[0] == 503
    assert proxy.injected == {"GET": 1}


def test_a_dropped_connection_gets_no_answer(bucket: str, proxy: FaultProxy) -> None:
    proxy.fail_next(1, DROP)
    connection = connect(proxy)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(connection, "GET", download_path(bucket, "x"))
    connection.close()
    assert call(connection, "GET", download_path(bucket, "x"))[0] == 404  # reconnected


def test_a_lost_answer_lands_upstream_and_reaches_no_client(bucket: str, proxy: FaultProxy) -> None:
    proxy.script([LOST_ANSWER, Fault(503, landed=True)])
    connection = connect(proxy)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(connection, "POST", upload_path(bucket, "lost.json"), body=b"first")
    connection.close()
    status, _, _ = call(connection, "POST", upload_path(bucket, "replaced.json"), body=b"second")
    assert status == 503
    assert call(connection, "GET", download_path(bucket, "lost.json"))[1] == b"first"
    assert call(connection, "GET", download_path(bucket, "replaced.json"))[1] == b"second"
    assert [(r.method, r.status, r.injected) for r in proxy.requests] == [
        ("POST", 0, True),
        ("POST", 503, True),
        ("GET", 200, False),
        ("GET", 200, False),
    ]


def test_an_unreachable_upstream_is_a_502() -> None:
    with FaultProxy("http://127.0.0.1:9") as proxy:
        status, data, _ = call(connect(proxy), "GET", "/anything")
    assert status == 502
    assert b"upstream unreachable" in data


def test_a_response_without_length_is_streamed_back_chunked() -> None:
    class Streaming(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one,", b"two,", b"three"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: object) -> None:
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Streaming)
    thread = threading.Thread(target=upstream.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        host, port = upstream.server_address[:2]
        with FaultProxy(f"http://{host!s}:{port}") as proxy:
            status, data, response = call(connect(proxy), "GET", "/stream")
        assert (status, data) == (200, b"one,two,three")
        assert response.getheader("Transfer-Encoding") == "chunked"
    finally:
        upstream.shutdown()
        upstream.server_close()
        thread.join()


def test_stopping_closes_kept_alive_connections_and_the_port(
    bucket: str, gcs_emulator: GCSEmulator
) -> None:
    before = set(threading.enumerate())
    with FaultProxy(gcs_emulator.endpoint_url) as proxy:
        connection = connect(proxy)
        assert call(connection, "GET", download_path(bucket, "x"))[0] == 404  # kept alive
        port = int(proxy.url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    connection.close()
