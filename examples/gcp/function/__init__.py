"""The deployable Cloud Function: this folder's files are the source zip's root (entry `main`).

This file only makes the folder a package of the distribution, so the demo and the tests import
`dagster_pipes_cloud.examples.gcp.function.main`; functions-framework loads `main.py` by its path
and never reads this file.
"""
