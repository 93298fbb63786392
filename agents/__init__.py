"""Built-in and example agents, written with the public `streams` API only."""
