"""The deployable function app: this folder's files are the app's root (`function_app.app`).

This file only makes the folder a package of the distribution, so the demo and the tests import
`dagster_pipes_cloud.examples.azure.function.function_app`; the Python worker imports
`function_app` from the app's root and never reads this file.
"""
