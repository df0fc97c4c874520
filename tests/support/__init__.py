"""Helpers the tests share: emulator clients, fault proxies, Dagster runs, function bodies."""
