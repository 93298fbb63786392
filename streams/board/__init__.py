"""The monitor board: what ``streams monitor`` shows, read from the agent watch's topics.

- :mod:`.snapshot`: the records read so far and the rows they make at a moment (pure);
- :mod:`.reader`: reads the status, alert and workflow topics of a cluster into a board (Kafka);
- :mod:`.render`: the screen, fitted to a console of any size (rich).

It reads what :class:`~streams.monitoring.AgentWatch` writes and never writes anything itself.
"""

from streams.board.reader import BoardReader, BoardTopics
from streams.board.render import render
from streams.board.snapshot import Board, Snapshot

__all__ = ["Board", "BoardReader", "BoardTopics", "Snapshot", "render"]
