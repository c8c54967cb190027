import sys

from iot_pipeline.streaming.cli import main

sys.exit(main())
