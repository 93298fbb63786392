"""Testing agents without Kafka: :class:`TestApp` runs an app's agents on an in-memory broker and
registry through the same handling code as the real worker (see :mod:`streams.testing.app`)."""

from streams.testing.app import DeadLetter, Sent, TestApp
from streams.testing.twin import FakeClock

__all__ = ["DeadLetter", "FakeClock", "Sent", "TestApp"]
