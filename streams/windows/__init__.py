"""Event-time windows: their shapes, and the windowed aggregation an agent runs (``App.windowed``)."""

from streams.windows.spec import Hopping, Session, Sliding, Tumbling, Window, WindowSpec

__all__ = ["Hopping", "Session", "Sliding", "Tumbling", "Window", "WindowSpec"]
