"""The example as a Dagster component: `defs/defs.yaml` in place of `definitions.py`'s Python, the
same function and asset (`dagster-pipes-cloud demo --cloud gcp --components` runs it).

    dagster dev -m dagster_pipes_cloud.examples.gcp.component_definitions
"""

import dagster as dg

from dagster_pipes_cloud.examples.gcp import defs as defs_folder

defs = dg.load_defs(defs_folder)
assets = list(defs.assets or [])
resources: dict[str, object] = {}
