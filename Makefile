# Bootstraps a fresh machine: venv, Python deps, the Debian tools the tests drive, the default model.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
EMOTIOND := $(VENV)/bin/emotiond
PYTEST_ARGS ?=

.PHONY: venv deps apt model node test check test-heavy lint demo bench clean image test-deploy

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Only the Debian packages whose commands are missing (.ci/debian-packages maps command to package). The package
# lists are fetched when something is installed, or when there are none (tests/test_fresh_machine.py simulates
# installs against them).
apt:
	@.ci/debian-packages | while IFS="$$(printf '\t')" read -r pkg why; do echo "apt: installing $$pkg: $$why"; done; \
	pkgs="$$(.ci/debian-packages --names)"; \
	SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	if [ -n "$$pkgs" ]; then \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$pkgs; \
	elif ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then \
		echo "apt: no package lists here; fetching them (the fresh-machine test simulates installs)"; \
		$$SUDO apt-get update -q; \
	fi

model: venv
	$(EMOTIOND) models fetch

# The Node.js subscriber example's packages (zeromq ships prebuilt binaries), pinned by its lock file.
NODE_EXAMPLE := examples/node
$(NODE_EXAMPLE)/node_modules/.package-lock.json: $(NODE_EXAMPLE)/package-lock.json | apt
	cd $(NODE_EXAMPLE) && npm ci --no-audit --no-fund

node: $(NODE_EXAMPLE)/node_modules/.package-lock.json

deps: venv apt model node

lint: venv
	$(VENV)/bin/ruff check .

# Two phases: the tests not marked serial under pytest-xdist (TEST_WORKERS at once: they mostly wait on daemons
# and servers, so more run than there are cores), then the serial ones alone (timing, rates, the whole machine).
# -rfEs lists every failure, error and skipped test (with its reason); tests/conftest.py fails the run on any
# skip unless EMOTIOND_ALLOW_SKIPS=1, and on any xfail.
TEST_WORKERS ?= 3
PYTEST := $(VENV)/bin/pytest -q -rfEs --durations=15
test: deps lint
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup --phase parallel $(PYTEST_ARGS)
	$(PYTEST) --phase serial $(PYTEST_ARGS)

# The quick loop: ruff, then the tests that start no process (a test that starts one while not marked process
# fails here) and run no neural network.
check: venv lint
	$(VENV)/bin/pytest -q -n 2 --no-processes -m 'not slow and not model and not heavy and not deploy' $(PYTEST_ARGS)

# The heavy cases (InceptionV3 and EfficientNetB4 trained, exported to TFLite and served; deliberate overload;
# daemon restarts under Chromium: about 6 minutes).
test-heavy: deps
	$(VENV)/bin/pytest -q -rs -m heavy $(PYTEST_ARGS)

# Containers (docs/deploy.md). Wheels and the model's source wheels are made here, so the image build needs
# neither PyPI nor an image registry; the debootstrap base is cached outside the clone (config/deploy/base-image.sh).
# SOURCE_DATE_EPOCH makes emotiond's wheel the same bytes for the same sources, so unchanged layers are reused.
IMAGE ?= localhost/emotiond:latest
PODMAN ?= podman
export CONTAINERS_CONF ?= $(CURDIR)/config/deploy/containers.conf
IMAGE_CONTEXT := build/image

image: venv apt
	rm -rf build && mkdir -p $(IMAGE_CONTEXT)
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) $(PIP) wheel -q --wheel-dir $(IMAGE_CONTEXT)/wheels '.[convert]' "opencv-python-headless==$$($(PY) -c \
		'from importlib.metadata import version; print(version("opencv-python"))')"
	$(PY) -c 'import sys, pathlib; from emotiond.workers import fetch; fetch.download_sources(pathlib.Path(sys.argv[1]))' \
		$(IMAGE_CONTEXT)/sources
	cp config/emotiond.toml config/deploy/headless-opencv.sh $(IMAGE_CONTEXT)/
	cd $(IMAGE_CONTEXT) && sha256sum wheels/* sources/* > inputs.sha256
	base="$$(PODMAN='$(PODMAN)' config/deploy/base-image.sh)" && \
		$(PODMAN) build --format docker --build-arg BASE="$$base" -t $(IMAGE) -f Containerfile $(IMAGE_CONTEXT)

# The image, compose and slim-install cases (minutes each; `make test` leaves them out).
test-deploy: deps image
	$(PODMAN) tag "$$(PODMAN='$(PODMAN)' config/deploy/base-image.sh mosquitto)" localhost/emotiond-mosquitto:latest
	$(VENV)/bin/pytest -q -rs -m deploy $(PYTEST_ARGS)

# The raw results, then the track changes of the same run (a second subscriber collects them meanwhile).
demo: venv model
	@changes=$$(mktemp); \
	$(EMOTIOND) run --source demo & pid=$$!; \
	$(EMOTIOND) events --changes --until-eos --timeout 120 > $$changes & cpid=$$!; \
	$(EMOTIOND) events --until-eos --timeout 120; status=$$?; \
	wait $$cpid || status=$$?; wait $$pid; \
	echo "--- track changes: appeared, changed, disappeared ---"; cat $$changes; rm -f $$changes; exit $$status

bench: deps
	$(EMOTIOND) bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
