"""The deployable Lambda function: this folder's files are the zip's root (`handler.handler`).

This file only makes the folder a package of the distribution, so the demo and the tests import
`dagster_pipes_cloud.examples.aws.function.handler`; Lambda imports `handler` from the zip's root
and never reads this file.
"""
