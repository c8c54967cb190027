"""Where local services keep downloads (cache, shared across checkouts) and runtime state."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Downloaded artifacts (Kafka classpath, MinIO binary); override with IOT_PIPELINE_CACHE."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "iot-pipeline"
    path = Path(os.environ.get("IOT_PIPELINE_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    """Data, logs and pid files of locally started services; override with IOT_PIPELINE_STATE."""
    path = Path(os.environ.get("IOT_PIPELINE_STATE", Path.cwd() / ".local"))
    path.mkdir(parents=True, exist_ok=True)
    return path
