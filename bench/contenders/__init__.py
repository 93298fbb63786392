"""One module per contender, each run as ``python -m bench.contenders.<name> CONFIG.json`` in its own
process (so CPU and peak RSS are its own). Peers run from bench/.venv and must not import ``streams``.

Protocol with the harness: the config file says what to do; the contender prints ``FIRST <epoch>``
on stdout when its first stage receives its first message, then runs until SIGTERM.
"""
