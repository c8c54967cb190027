"""Fixtures of the browser tests: a small lake, a real ``dagster dev`` on it, and Debian's Chromium.

One server per module (start-up is the expensive part); screenshots of every step go to
``.local/ui-artifacts/<test>/`` (git-ignored), so a failure in CI can be looked at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from iot_pipeline.testing.bronze import generate_bronze, write_bronze
from iot_pipeline_tests.ui import server

ARTIFACTS = server.REPO / ".local" / "ui-artifacts"
FIRST_HOUR = datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
HOURS = 4  # 10:00-13:00: the UI backfills 10-12, the broken writer takes 13
BROKEN_HOUR = "2026-01-05-13:00"


@dataclass
class Dagster:
    url: str
    env: dict[str, str]
    lake: Path
    broken_run: subprocess.Popen
    broken_log: Path


def chromium_path() -> str:
    """Debian's ``chromium`` (installed by ``scripts/setup.sh --test``): no browser download at run time."""
    path = os.environ.get("IOT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail(
            "Chromium not found: run scripts/setup.sh --test (apt package 'chromium') or set IOT_CHROMIUM"
        )
    return path


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dagster]:
    tmp = tmp_path_factory.mktemp("ui")
    lake, home = tmp / "lake", tmp / "dagster_home"
    batch = generate_bronze(FIRST_HOUR, HOURS, {"temperature": 1200, "door": 300}, seed=11)
    write_bronze(batch.rows, lake / "bronze" / "events")
    server.write_instance(home)
    env = server.dagster_env(home, lake)
    server.stop_sensors(env)
    # The broken writer runs in the same instance while the server starts (it takes a Spark start-up).
    broken_log = tmp / "broken_run.log"
    with broken_log.open("w") as fh:
        broken = subprocess.Popen(
            [str(server.BIN / "dagster"), "asset", "materialize", "-f", str(Path(__file__).parent / "corrupt_defs.py"),
             "--select", "silver/events,silver/device_minute_stats", "--partition", BROKEN_HOUR],
            cwd=server.REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    proc, url = server.start(env, tmp / "dagster_dev.log")
    try:
        yield Dagster(url, env, lake, broken, broken_log)
    finally:
        if broken.poll() is None:
            broken.kill()
        server.stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # the UI polls every 2 s and the CI machine is shared

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield b
        b.close()


class Shots:
    """Numbered screenshots of one test's steps."""

    def __init__(self, page, folder: Path) -> None:
        self.page, self.folder, self.n = page, folder, 0
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def __call__(self, name: str) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    # Dagster's one-time "join the community" dialog covers the page on a new instance.
    pg.add_locator_handler(pg.get_by_role("button", name="Skip"), lambda button: button.click())
    pg.shots = Shots(pg, ARTIFACTS / request.node.name)
    try:
        yield pg
    finally:
        try:
            pg.shots("last")
        finally:
            context.close()
