"""HTTP Cloud Functions the end-to-end tests serve with `LocalCloudFunctionHost`."""

from typing import Any

from e2e import fan_out_functions, function_bodies

from dagster_pipes_cloud.adapters.gcs import GCSBlobStore
from dagster_pipes_cloud.external import PipesGCSMessageWriter, cloud_function

counting = cloud_function(function_bodies.counting)
appending = cloud_function(function_bodies.appending)
chatty = cloud_function(function_bodies.chatty)
failing = cloud_function(function_bodies.failing)
tagged = cloud_function(function_bodies.tagged)
paced = cloud_function(function_bodies.paced)
ends_midway = cloud_function(function_bodies.ends_midway)


def not_pipes(request: Any) -> str:
    """A plain HTTP function that ignores Dagster's bootstrap."""
    return "done"


def official_writer(request: Any) -> str:
    """Written the way dagster_pipes documents it, with its own GCS writer."""
    from dagster_pipes import (
        PipesDefaultContextLoader,
        PipesGCSMessageWriter,
        PipesMappingParamsLoader,
        open_dagster_pipes,
    )
    from google.cloud import storage

    with open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(request.get_json()),
        context_loader=PipesDefaultContextLoader(),
        message_writer=PipesGCSMessageWriter(storage.Client(), interval=1),
    ) as pipes:
        pipes.log.info("written by dagster_pipes")
        pipes.report_asset_materialization(metadata={"writer": "dagster_pipes"})
    return "official"


many_chunks = cloud_function(
    message_writer=PipesGCSMessageWriter(max_chunk_bytes=400, interval=0.01)
)(function_bodies.many_chunks)
large_and_non_ascii = cloud_function(function_bodies.large_and_non_ascii)
bad_line = cloud_function(message_writer=function_bodies.writer_with_a_bad_line(GCSBlobStore))(
    function_bodies.kept_beside_a_bad_line
)
fan_out_work = cloud_function(fan_out_functions.recorded_work)
fan_out_wait = cloud_function(fan_out_functions.waits_for_cancel)
