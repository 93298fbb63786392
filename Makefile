# One task runner for people, CI and docs. Each target is a script under scripts/.
.PHONY: setup demo demo-stop test unit stack-up stack-down codegen lint

setup:      ## create .venv and install the package with dev tools
	scripts/setup
demo:       ## start the stack, a supervisor workflow's workers and the agent watch, feed cases, watch them live
	scripts/demo
demo-stop:  ## stop the demo's workers, then the stack if the demo started it
	scripts/demo stop
test:       ## lint, type-check and run every test (starts the real broker + registry)
	scripts/test
unit:       ## unit tests only (no broker)
	scripts/setup && .venv/bin/pytest -m unit
stack-up:
	scripts/setup && .venv/bin/streams stack up
stack-down:
	scripts/setup && .venv/bin/streams stack down
codegen:    ## regenerate streams/events.py from avro/orchestration
	scripts/setup && .venv/bin/streams codegen avro/orchestration streams/events.py
lint:
	scripts/setup && .venv/bin/ruff check streams agents tests bench && .venv/bin/mypy && .venv/bin/lint-imports
