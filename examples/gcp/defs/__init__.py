"""The components variant's defs folder: `defs.yaml` declares the example's function as a Dagster
component (`component_definitions.py` loads it). This file makes the folder a package of the
distribution, which Dagster loads a defs folder as."""
