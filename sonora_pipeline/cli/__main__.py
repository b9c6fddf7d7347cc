"""`python -m sonora_pipeline.cli`: the same command line as the `sonora-pipeline` script."""

import sys

from sonora_pipeline.cli import main

sys.exit(main())
