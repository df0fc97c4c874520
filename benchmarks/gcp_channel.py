"""What the GCS message channel adds to a trivial Cloud Function run: ours against dagster-gcp's.

Both run in the same process against the same gcp-storage-emulator, each function on its own
functions-framework host, through Dagster `materialize`. dagster-gcp has no Cloud Functions
client, so both use our `PipesCloudFunctionClient` as the transport (one POST to the function's
URL, the context in the body); what differs is the channel: our `PipesGCSMessageReader` and
`@cloud_function` against dagster-gcp's `PipesGCSMessageReader` and dagster_pipes'
`PipesGCSMessageWriter`, each at its defaults. Reported: the median wall time of `client.run`
over the bare POST round trip of a function that does nothing, the GCS calls per run on the
Dagster side and on the function side, and the ratios official/ours.

    .venv/bin/python benchmarks/gcp_channel.py [--runs N]
"""

from __future__ import annotations

import functools
import http.client
import sys
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
from dagster_gcp.pipes import PipesGCSMessageReader as OfficialGCSMessageReader
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from dagster_pipes_cloud.local import GCSEmulator, LocalCloudFunctionHost
from dagster_pipes_cloud.orchestration import PipesCloudFunctionClient, PipesGCSMessageReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BUCKET, Counter, measure, median_round_trip, parse_runs, report

DAGSTER_CALLS = "GCS calls/run"
FUNCTION_CALLS = "function GCS calls/run"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
)


class CountingSession(requests.Session):
    """A `requests.Session` that counts the HTTP requests sent through it: given to a storage
    client as its `_http`, it counts that client's GCS calls (retries and background fetches
    included)."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = Counter()

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.counter.count()
        return super().request(*args, **kwargs)


def counting_storage_client(
    gcs: GCSEmulator, session: CountingSession, *, metadata_cache: bool
) -> storage.Client:
    """An anonymous storage client for `gcs` that sends through `session`.

    `metadata_cache=False` turns off the SDK's bucket metadata cache, as our default client does
    (the SDK's default sends a background bucket GET on a bucket's first use and after a 404).
    """
    client = storage.Client(
        project=gcs.project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": gcs.endpoint_url},
        _http=session,
    )
    if not metadata_cache:
        client._bucket_metadata_cache = None
    return client


class CountingProxy:
    """A reverse proxy on 127.0.0.1 in front of `upstream` that counts the requests it forwards.

    For a process whose storage client we cannot hand a `CountingSession` (the function's own):
    point its `STORAGE_EMULATOR_HOST` at `url`. Request bodies are forwarded by their
    `Content-Length` (GCS JSON API uploads under 8 MB send one); a response is read whole and
    sent back with its length, so client connections stay alive.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.counter = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _forwarding_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def forward(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Any:
        """Send one request upstream; the response, read whole."""
        self.counter.count()
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            response = connection.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            connection.close()


def _forwarding_handler(proxy: CountingProxy) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm on, the body would wait
        # for the client's delayed ACK of the headers (40 ms on Linux).
        disable_nagle_algorithm = True

        def forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in _HOP_BY_HOP | {"content-length"}
            }
            status, reason, response_headers, data = proxy.forward(
                self.command, self.path, body, headers
            )
            self.send_response(status, reason)
            for name, value in response_headers:
                if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = forward

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Forward


def our_client(
    gcs: GCSEmulator, calls: CountingSession, post: requests.Session
) -> PipesCloudFunctionClient:
    """Ours at its defaults: our reader, with a client made as our default one is."""
    client = counting_storage_client(gcs, calls, metadata_cache=False)
    return PipesCloudFunctionClient(
        message_reader=PipesGCSMessageReader(bucket=BUCKET, client=client), session=post
    )


def official_client(
    gcs: GCSEmulator, calls: CountingSession, post: requests.Session
) -> PipesCloudFunctionClient:
    """dagster-gcp's reader at its defaults (a client made as `storage.Client()` is), carried by
    our client: dagster-gcp has no Cloud Functions client."""
    client = counting_storage_client(gcs, calls, metadata_cache=True)
    return PipesCloudFunctionClient(
        message_reader=OfficialGCSMessageReader(bucket=BUCKET, client=client), session=post
    )


def main() -> None:
    runs = parse_runs(__doc__)
    with ExitStack() as stack:
        gcs = stack.enter_context(GCSEmulator())
        gcs.create_bucket(BUCKET)
        function_gcs = stack.enter_context(CountingProxy(gcs.endpoint_url))
        function_env = {**gcs.env, "STORAGE_EMULATOR_HOST": function_gcs.url}
        urls = {
            name: stack.enter_context(
                LocalCloudFunctionHost(f"gcp_functions:{name}", env=function_env)
            ).url
            for name in ("ours", "official", "bare")
        }
        post = requests.Session()
        baseline = median_round_trip(lambda: post.post(urls["bare"], json={}), runs)

        # Each run gets its own reader and storage client, as in a Dagster deployment, where
        # each run's process builds its resources. (dagster-gcp's reader keeps its chunk counter
        # on the instance, so a second session on one instance looks for chunk 2 first.)
        results = {}
        for name, make_client in (("ours", our_client), ("official", official_client)):
            calls = CountingSession()
            results[name] = measure(
                functools.partial(make_client, gcs, calls, post),
                runs,
                {DAGSTER_CALLS: calls.counter, FUNCTION_CALLS: function_gcs.counter},
                function_url=urls[name],
            )
    report("bare POST round trip", baseline, runs, results)


if __name__ == "__main__":
    main()
