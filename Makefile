# Two commands do everything on a fresh Debian machine:
#   make serve   install everything, then run the main job
#   make test    install everything, then run the whole test suite
PY := .venv/bin/python
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup serve test bench lint weights

setup:
	bash scripts/setup.sh

serve: setup
	$(PY) -m server.cli avatar --params samples/params/default.json --format vrm1 -o out/default.vrm

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider

bench: setup
	$(PY) -m bench

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
