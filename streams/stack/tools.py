"""The external programs the stack needs: a Java 17+ runtime (always) and Maven (first run only).

Finding them early turns "No such file or directory" deep inside a start into one actionable line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from streams.errors import StackError

MIN_JAVA = 17
JAVA_HINT = "install a JDK (e.g. apt-get install openjdk-17-jre-headless)"
MAVEN_HINT = "install Maven (e.g. apt-get install maven)"

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major(version_output: str) -> int | None:
    """The major version from ``java -version`` output ("1.8.0_292" is 8, "17.0.15" is 17)."""
    match = _VERSION.search(version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def find_java() -> Path:
    """The ``java`` to run servers with: ``$JAVA_HOME/bin/java`` if set, else the one on PATH; 17+."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not os.access(candidate, os.X_OK):
        found = shutil.which("java")
        candidate = Path(found) if found else None
    if candidate is None:
        raise StackError(f"Java {MIN_JAVA}+ not found: {JAVA_HINT}")
    try:
        result = subprocess.run(
            [str(candidate), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"Java {MIN_JAVA}+ not usable at {candidate} ({exc}): {JAVA_HINT}") from exc
    major = java_major(result.stderr + result.stdout)
    if major is None or major < MIN_JAVA:
        found_as = f"Java {major}" if major else "an unknown Java"
        raise StackError(f"Java {MIN_JAVA}+ required, found {found_as} at {candidate}: {JAVA_HINT}")
    return candidate


def find_mvn() -> Path:
    """Maven, needed only to fetch jars the first time (later starts are offline)."""
    found = shutil.which("mvn")
    if found is None:
        raise StackError(
            "Maven (mvn) not found: it fetches Kafka and Apicurio from Maven Central on first run; "
            + MAVEN_HINT
        )
    return Path(found)
