"""Simulated device types and the fleet built from them.

Each type carries its physical unit, a plausible operating range, a daily cycle, sensor noise and drift,
and a log-normal ``event_duration`` (how long one measurement takes). Binary sensors (motion, door,
smoke) report 0/1 with a time-of-day dependent probability. The numbers are plausible rather than
calibrated: what matters downstream is that each type has its own distribution and daily shape.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Shape = Literal["cosine", "daylight"]


@dataclass(frozen=True)
class DeviceType:
    name: str
    unit: str
    binary: bool
    base: float  # mean reading (analog) or night-time probability of 1 (binary)
    daily_amplitude: float  # analog: added at the daily peak; binary: extra probability at the peak
    peak_hour: float  # UTC hour of the daily maximum
    shape: Shape  # cosine: smooth day/night swing; daylight: zero at night, bump by day
    noise: float  # standard deviation of one reading (analog)
    drift_per_day: float  # standard deviation of a device's calibration drift per day
    low: float  # physical range: normal readings are clamped into it
    high: float
    decimals: int
    duration_median_ms: float  # log-normal event_duration: median and sigma of the underlying normal
    duration_sigma: float
    firmware: tuple[str, ...]


DEVICE_TYPES: tuple[DeviceType, ...] = (
    DeviceType(
        "temperature",
        "celsius",
        False,
        21.0,
        3.0,
        15.0,
        "cosine",
        0.3,
        0.02,
        -40.0,
        85.0,
        2,
        120.0,
        0.35,
        ("2.3.1", "2.4.0"),
    ),
    DeviceType(
        "humidity",
        "percent",
        False,
        45.0,
        -8.0,
        15.0,
        "cosine",
        1.5,
        0.05,
        0.0,
        100.0,
        1,
        150.0,
        0.35,
        ("1.8.2", "1.9.0"),
    ),
    DeviceType(
        "pressure",
        "hPa",
        False,
        1013.0,
        1.5,
        10.0,
        "cosine",
        0.6,
        0.05,
        950.0,
        1050.0,
        1,
        90.0,
        0.30,
        ("3.0.4",),
    ),
    DeviceType(
        "motion",
        "boolean",
        True,
        0.03,
        0.35,
        13.0,
        "daylight",
        0.0,
        0.0,
        0.0,
        1.0,
        0,
        60.0,
        0.40,
        ("1.2.0", "1.2.5"),
    ),
    DeviceType(
        "light",
        "lux",
        False,
        5.0,
        750.0,
        12.5,
        "daylight",
        15.0,
        0.5,
        0.0,
        100000.0,
        1,
        80.0,
        0.30,
        ("2.0.1",),
    ),
    DeviceType(
        "co2",
        "ppm",
        False,
        430.0,
        550.0,
        14.0,
        "daylight",
        25.0,
        0.5,
        380.0,
        5000.0,
        0,
        250.0,
        0.40,
        ("4.1.0", "4.1.2"),
    ),
    DeviceType(
        "air_quality",
        "aqi",
        False,
        35.0,
        20.0,
        17.0,
        "cosine",
        6.0,
        0.1,
        0.0,
        500.0,
        0,
        320.0,
        0.45,
        ("1.0.3", "1.1.0"),
    ),
    DeviceType(
        "vibration",
        "mm/s",
        False,
        2.5,
        1.0,
        11.0,
        "daylight",
        0.4,
        0.01,
        0.0,
        50.0,
        3,
        180.0,
        0.50,
        ("5.2.2",),
    ),
    DeviceType(
        "door", "boolean", True, 0.02, 0.20, 9.0, "daylight", 0.0, 0.0, 0.0, 1.0, 0, 70.0, 0.35, ("1.4.1",)
    ),
    DeviceType(
        "smoke",
        "boolean",
        True,
        0.001,
        0.0,
        12.0,
        "cosine",
        0.0,
        0.0,
        0.0,
        1.0,
        0,
        400.0,
        0.30,
        ("3.3.0", "3.3.1"),
    ),
)

DEVICE_TYPES_BY_NAME: dict[str, DeviceType] = {t.name: t for t in DEVICE_TYPES}

_SITES = ("plant-a", "plant-b", "warehouse-1", "office-hq", "lab-2")


@dataclass(frozen=True)
class Device:
    device_id: str
    type: DeviceType
    location: str
    firmware_version: str
    offset: float  # calibration bias of this unit
    drift_per_hour: float
    battery_start: float  # percent at the start of the timeline
    battery_drain_per_hour: float
    signal_base: float  # dBm around which this unit's signal fluctuates


def build_fleet(
    num_devices: int, rng: random.Random, types: tuple[DeviceType, ...] = DEVICE_TYPES
) -> list[Device]:
    """Types are assigned round-robin so every type is present whenever num_devices >= len(types)."""
    if num_devices < 1:
        raise ValueError("num_devices must be >= 1")
    if not types:
        raise ValueError("at least one device type is required")
    fleet = []
    for i in range(num_devices):
        t = types[i % len(types)]
        fleet.append(
            Device(
                device_id=f"{t.name}-{i + 1:04d}",
                type=t,
                location=f"{rng.choice(_SITES)}/floor-{rng.randint(0, 5)}/room-{rng.randint(1, 40):02d}",
                firmware_version=rng.choice(t.firmware),
                offset=rng.gauss(0.0, t.noise),
                drift_per_hour=rng.gauss(0.0, t.drift_per_day) / 24.0,
                battery_start=rng.uniform(40.0, 100.0),
                battery_drain_per_hour=rng.uniform(0.05, 0.5),
                signal_base=rng.uniform(-95.0, -45.0),
            )
        )
    return fleet
