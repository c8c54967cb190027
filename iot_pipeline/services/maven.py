"""Resolve JVM artifacts from Maven Central with the machine's Maven, cached outside the repository."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from iot_pipeline.services.paths import cache_dir

# Debian's Maven defaults to dependency plugin 2.8, whose `get` walks test-scope dependencies too.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>iot-pipeline.local</groupId>
  <artifactId>{name}</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


class ToolMissingError(RuntimeError):
    pass


def require_tool(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissingError(f"'{tool}' is not on PATH: {hint}")
    return path


def _dependency(coordinate: str) -> str:
    group, artifact, version = coordinate.split(":")
    return (
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>"
    )


def resolve_classpath(name: str, coordinates: list[str]) -> list[Path]:
    """Jar paths of ``coordinates`` and their transitive dependencies (``group:artifact:version``).

    The first call downloads into ``~/.m2``; later calls read the cached classpath file and need no
    network, so a second start of a service works offline.
    """
    digest = hashlib.sha256("\n".join(sorted(coordinates)).encode()).hexdigest()[:12]
    work = cache_dir() / "maven" / f"{name}-{digest}"
    cp_file = work / "classpath.txt"
    if cp_file.exists():
        jars = [Path(p) for p in cp_file.read_text().strip().split(":") if p]
        if jars and all(j.exists() for j in jars):
            return jars
    mvn = require_tool("mvn", "install Maven (Debian: apt-get install maven) or run scripts/setup.sh.")
    require_tool("java", "install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless).")
    work.mkdir(parents=True, exist_ok=True)
    pom = work / "pom.xml"
    pom.write_text(_POM.format(name=name, deps="\n".join(_dependency(c) for c in coordinates)))
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            f"{DEPENDENCY_PLUGIN}:build-classpath",
            f"-Dmdep.outputFile={cp_file}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not cp_file.exists():
        raise RuntimeError(
            f"Maven could not resolve {coordinates}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    return [Path(p) for p in cp_file.read_text().strip().split(":") if p]


def prefetch(coordinates: list[str]) -> None:
    """Put artifacts (with dependencies) into ``~/.m2`` so Spark's Ivy resolver finds them offline."""
    mvn = require_tool("mvn", "install Maven (Debian: apt-get install maven) or run scripts/setup.sh.")
    for coordinate in coordinates:
        result = subprocess.run(
            [mvn, "-q", "-B", f"{DEPENDENCY_PLUGIN}:get", f"-Dartifact={coordinate}"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"Maven could not fetch {coordinate}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )
