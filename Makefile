# One command each: `make run` starts the embedded stack, `make test` runs the whole suite.
# `make lock` rewrites the images' hashed dependency locks from pyproject.toml (add
# LOCK_FLAGS=--upgrade to move every pin to its newest release); `make images` builds the four
# images with a Docker engine (PYTHON_IMAGE=... picks another base; .ci/docker.sh makes one).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-peaks screenshot lock images mutants clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/video2mp3 dev

# The suite runs with the ffmpeg the converter chooses (in CI, Debian's: .ci/run installs it);
# the media tests then run once more with the pinned static build, so that both are seen.
PINNED_FFMPEG = $(shell $(BIN)/python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/video2mp3 serve converter --check
	$(BIN)/pytest
	VIDEO2MP3_FFMPEG=$(PINNED_FFMPEG) $(BIN)/video2mp3 serve converter --check
	VIDEO2MP3_FFMPEG=$(PINNED_FFMPEG) $(BIN)/pytest -m media

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

# Peak memory of auth, the gateway and the converter under their worst allowed load (DEPLOY.md).
bench-peaks: $(STAMP)
	$(BIN)/python -m bench.peaks

# The README's pictures of the page, from a real run (needs the system's chromium).
screenshot: $(STAMP)
	$(BIN)/python -m tests.e2e.screenshot docs/screenshot.png

# Breaks the code on purpose, mutant by mutant, and expects the guarding tests to fail.
mutants: $(STAMP)
	$(BIN)/python -m tests.mutants
# The images run Python 3.11 on Linux; setuptools (the build backend) is locked too, so that the
# package installs without build isolation and nothing unhashed is downloaded.
LOCKS := deploy/docker
BUILD_REQUIRES := $(BIN)/python -c "import tomllib; \
	print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\n')"
COMPILE := $(BIN)/uv pip compile --quiet pyproject.toml - --generate-hashes --python-version 3.11 \
	--python-platform linux --custom-compile-command "make lock" $(LOCK_FLAGS)

lock: $(STAMP)
	$(BUILD_REQUIRES) | $(COMPILE) -o $(LOCKS)/web.lock
	$(BUILD_REQUIRES) | $(COMPILE) --extra converter -c $(LOCKS)/web.lock -o $(LOCKS)/converter.lock

IMAGES := auth gateway notifier converter
images:
	for target in $(IMAGES); do \
		docker build --network host --file deploy/docker/Dockerfile --target $$target \
			$(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) \
			--tag video2mp3-$$target . || exit 1; \
	done

clean:
	rm -rf $(VENV) var .pytest_cache
