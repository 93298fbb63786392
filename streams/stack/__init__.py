"""The local stack: a real Apache Kafka (KRaft) and Apicurio Registry on loopback, without Docker.

``LocalStack`` is the whole public surface; ``streams stack up|down|status`` is its CLI. Artifacts come
from Maven Central once (versions in ``infra/pom.xml``) and are cached, with all state, logs and pid
files, under ``<home>/.stack``. The modules, one job each:

- ``layout``    topologies (ports, node ids) and the ``.stack`` directory layout
- ``tools``     finding Java 17+ and Maven
- ``fetch``     Maven fetch of the Kafka jars and the Apicurio app
- ``kafka``     server.properties, storage format, broker command line, broker count
- ``registry``  Apicurio command line, readiness, global compatibility
- ``processes`` pid files, detached start, stop, port and readiness checks
- ``local``     ``LocalStack``: what to start, in which order, within which deadline

Nothing here runs at import time, and nothing here ever stops a process it did not start.
"""

from streams.stack.local import ComponentStatus, LocalStack

__all__ = ["ComponentStatus", "LocalStack"]
