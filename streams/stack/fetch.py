"""Fetch the stack's Java artifacts from Maven Central into ``.stack/`` once; later starts are offline.

``infra/pom.xml`` is the single source of truth for versions. Kafka's jars come from ``mvn package`` there
(copy-dependencies into ``.stack/kafka/libs``). Apicurio Registry is a tarball fetched with
``dependency:get`` and unpacked here, because its parent POM is not resolvable everywhere and Maven's own
unpack goal insists on it. Both land in a staging directory first and are moved into place whole, so an
interrupted download never leaves a half-filled classpath behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streams.errors import StackError
from streams.stack.layout import StackPaths
from streams.stack.processes import run_quiet
from streams.stack.tools import find_mvn

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
# Written next to the jars: the pom they were resolved from. A changed pom (new version) re-fetches.
STAMP = ".pom-sha256"


# streams/stack/fetch.py -> the checkout's root, which holds infra/ when running from a source tree.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def find_infra(home: Path) -> Path:
    """The ``infra/`` directory with pom.xml: under ``home``, else in the checkout this code runs from."""
    for root in (home, SOURCE_ROOT):
        if (root / "infra" / "pom.xml").is_file():
            return root / "infra"
    raise StackError(f"infra/pom.xml not found under {home} or {SOURCE_ROOT}; run from a project checkout")


@dataclass(frozen=True)
class Versions:
    kafka: str
    apicurio: str


def read_versions(pom: Path) -> Versions:
    """The ``kafka.version`` and ``apicurio.version`` properties of ``infra/pom.xml``."""
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise StackError(f"cannot read {pom}: {exc}") from exc

    def prop(name: str) -> str:
        node = root.find(f"m:properties/m:{name}", _POM_NS)
        if node is None or not (node.text or "").strip():
            raise StackError(f"{pom} has no <{name}> property")
        return (node.text or "").strip()

    return Versions(kafka=prop("kafka.version"), apicurio=prop("apicurio.version"))


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def kafka_libs_current(paths: StackPaths, pom: Path) -> bool:
    """True if ``.stack/kafka/libs`` was filled from exactly this pom."""
    try:
        return (paths.kafka_libs / STAMP).read_text().strip() == _pom_digest(pom)
    except FileNotFoundError:
        return False


def _maven(paths: StackPaths, *args: str) -> list[str]:
    return [
        str(find_mvn()),
        "-B",
        "-q",
        "--no-transfer-progress",
        f"-Dmaven.repo.local={paths.m2}",
        *args,
    ]


# dependency:get of 3.x reads the artifact's descriptor and fails on Apicurio's unpublished parent POM,
# even with -Dtransitive=false; 2.8 (Maven's default outside a project) only fetches the file.
DEPENDENCY_GET = "org.apache.maven.plugins:maven-dependency-plugin:2.8:get"


def _replace_dir(staged: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged.rename(target)
    with contextlib.suppress(OSError):  # only if nothing else is staged there
        staged.parent.rmdir()


def ensure_kafka_libs(paths: StackPaths, pom: Path, progress: Callable[[str], object]) -> None:
    """Make ``.stack/kafka/libs`` hold the jars ``pom`` names (network only when it does not yet)."""
    if kafka_libs_current(paths, pom):
        return
    progress("fetching Kafka jars from Maven Central (first run only)...")
    staging = paths.stack_dir / "staging" / "kafka"
    shutil.rmtree(staging, ignore_errors=True)
    run_quiet(
        _maven(paths, "-f", str(pom), f"-Dstack.dir={staging}", "package"),
        log=paths.stack_dir / "logs" / "maven.log",
        what="maven (fetching Kafka jars)",
    )
    libs = staging / "kafka" / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise StackError(f"maven ran but put no Kafka jars in {libs}; read {paths.stack_dir}/logs/maven.log")
    (libs / STAMP).write_text(_pom_digest(pom) + "\n")
    _replace_dir(libs, paths.kafka_libs)
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()


def apicurio_runner(paths: StackPaths, version: str) -> Path:
    """The Quarkus legacy-jar launcher; its manifest Class-Path points into the ``lib/`` beside it."""
    return paths.apicurio / version / f"apicurio-registry-app-{version}-runner.jar"


def _apicurio_tarball(paths: StackPaths, version: str) -> Path:
    return (
        paths.m2
        / "io/apicurio/apicurio-registry-app"
        / version
        / f"apicurio-registry-app-{version}-all.tar.gz"
    )


def ensure_apicurio(paths: StackPaths, version: str, progress: Callable[[str], object]) -> Path:
    """Make ``.stack/apicurio/<version>`` hold the unpacked registry app; return its runner jar."""
    runner = apicurio_runner(paths, version)
    if runner.is_file():
        return runner
    tarball = _apicurio_tarball(paths, version)
    if not tarball.is_file():
        progress(f"fetching Apicurio Registry {version} from Maven Central (first run only, ~110 MB)...")
        run_quiet(
            _maven(
                paths,
                f"-Dartifact=io.apicurio:apicurio-registry-app:{version}:tar.gz:all",
                "-Dtransitive=false",
                DEPENDENCY_GET,
            ),
            log=paths.stack_dir / "logs" / "maven.log",
            # Outside infra/: the pom there pins dependency-plugin 3.8.1 for copy-dependencies.
            cwd=paths.stack_dir,
            what="maven (fetching Apicurio Registry)",
        )
    progress(f"unpacking Apicurio Registry {version}...")
    staging = paths.stack_dir / "staging" / f"apicurio-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(tarball) as archive:
            # The "data" filter refuses absolute paths, links out of the tree and device files.
            archive.extractall(staging, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise StackError(f"cannot unpack {tarball}: {exc}") from exc
    if not (staging / runner.name).is_file():
        raise StackError(f"{tarball} has no {runner.name}; the app layout changed")
    _replace_dir(staging, runner.parent)
    return runner
