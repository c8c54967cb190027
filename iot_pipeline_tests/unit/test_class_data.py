"""Which class-data options a driver gets: record once, adopt the finished recording, then map it."""

import struct
import subprocess
import sys
import time
from pathlib import Path

from iot_pipeline.resources.class_data import (
    DYNAMIC_ARCHIVE_MAGIC,
    PREFIX,
    QUIET,
    archive_key,
    driver_options,
)

CLASS_PATH = "/jars/kafka.jar"
# What a finished recording starts with (its header is written last).
WHOLE = struct.pack("=I", DYNAMIC_ARCHIVE_MAGIC) + b"regions"


def _pending(options: str) -> Path:
    flag = next(o for o in options.split() if o.startswith("-XX:ArchiveClassesAtExit="))
    return Path(flag.partition("=")[2])


def test_the_first_driver_records_then_the_next_adopts_and_maps_the_archive(tmp_path: Path) -> None:
    first = driver_options(CLASS_PATH, "-Dkeep=me", tmp_path)
    pending = _pending(first)
    assert pending.parent == tmp_path and pending.name.startswith(PREFIX) and pending.suffix == ".pending"
    assert QUIET in first and first.endswith("-Dkeep=me")

    pending.write_bytes(WHOLE)  # what the recording JVM writes when it exits
    second = driver_options(CLASS_PATH, directory=tmp_path)
    archive = tmp_path / f"{PREFIX}{archive_key(CLASS_PATH)}.jsa"
    assert second == f"-XX:SharedArchiveFile={archive} {QUIET}"
    assert archive.read_bytes() == WHOLE and not pending.exists()


def test_no_second_recording_while_a_jvm_records_and_none_is_adopted_half_written(tmp_path: Path) -> None:
    pending = _pending(driver_options(CLASS_PATH, directory=tmp_path))
    pending.write_bytes(WHOLE)
    # A live process whose command line names the recording, as the recording JVM's does.
    recorder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", f"-XX:ArchiveClassesAtExit={pending}"]
    )
    try:
        deadline = time.monotonic() + 10  # the command line is readable once the exec has finished
        while str(pending).encode() not in Path(f"/proc/{recorder.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert driver_options(CLASS_PATH, "-Dx=1", tmp_path) == "-Dx=1"
        assert pending.exists() and not list(tmp_path.glob("*.jsa"))
    finally:
        recorder.kill()
        recorder.wait()
    assert "-XX:SharedArchiveFile=" in driver_options(CLASS_PATH, directory=tmp_path)


def test_a_recording_cut_short_is_dropped_and_recorded_again(tmp_path: Path) -> None:
    pending = _pending(driver_options(CLASS_PATH, directory=tmp_path))
    pending.write_bytes(b"\0" * 4096)  # a JVM killed mid-dump: the regions, no header yet
    again = driver_options(CLASS_PATH, directory=tmp_path)
    assert "-XX:ArchiveClassesAtExit=" in again and not list(tmp_path.glob("*.jsa"))
    assert not pending.exists()


def test_options_that_already_decide_are_left_alone(tmp_path: Path) -> None:
    for user in ("-Xshare:off", "-XX:SharedArchiveFile=/elsewhere.jsa", "-XX:ArchiveClassesAtExit=/x.jsa"):
        assert driver_options(CLASS_PATH, user, tmp_path) == user
    assert not list(tmp_path.iterdir())


def test_each_class_path_has_its_own_archive(tmp_path: Path) -> None:
    assert archive_key(CLASS_PATH) != archive_key(CLASS_PATH + ":/jars/hadoop-aws.jar")
    assert archive_key(CLASS_PATH) == archive_key(CLASS_PATH)
