"""`sonora-pipeline`, the command line: one module per job, so a command's code is found by its name.

`main` parses and dispatches; `sync` runs the warehouse commands through the same Dagster definitions the UI
uses; `connection` checks credentials; `localorg` is the only door to the local org (an optional extra),
which `demo` and `ui` use for the demo.
"""

from sonora_pipeline.cli.main import main

__all__ = ["main"]
