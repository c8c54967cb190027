"""``python -m iot_pipeline.ingestion``: the simulator without the ``iot-pipeline`` dispatcher."""

from iot_pipeline.ingestion.cli import main

raise SystemExit(main())
