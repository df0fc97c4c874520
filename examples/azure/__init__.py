"""The Azure example: a v2-model FunctionApp and the Dagster definitions that run it."""
