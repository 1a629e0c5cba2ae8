# Two commands do everything on a fresh machine:
#   make demo   install, then draw garments from the pretrained Fashion-MNIST model
#   make test   install, then run the test suite
# Both install into a project virtual environment, .venv/ (Debian and Ubuntu refuse pip installs
# into the system Python, PEP 668); afterwards `source .venv/bin/activate` puts `ddpm` on the PATH.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH := torch==2.13.0
FASHION_MNIST := /usr/share/datasets/fashion-mnist
# apt-get through sudo unless root; tried as is first, then after refreshing the package lists
APT_INSTALL = SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get install -y -qq $(1) || { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(1); }

.PHONY: install install-dev data browser demo test test-all lint bench perf

install: data $(VENV)/.installed

install-dev: data browser $(VENV)/.installed-dev

data:
	@if [ ! -d $(FASHION_MNIST) ]; then $(call APT_INSTALL,dataset-fashion-mnist); fi

# the headless browser that tests the web page of `ddpm serve` end to end
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		$(call APT_INSTALL,chromium chromium-driver); fi

# A venv without pip is what a failed `python3 -m venv` leaves behind (Debian without python3-venv
# says "ensurepip is not available"): remove it, install python3-venv, and create it again.
$(VENV)/bin/pip:
	@echo "Creating the virtual environment $(VENV) with $(PYTHON)"
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV) || { \
		rm -rf $(VENV); \
		command -v apt-get >/dev/null || { echo "$(PYTHON) -m venv failed; install Python's venv module"; exit 1; }; \
		echo "Installing Debian's python3-venv (needed for a virtual environment)"; \
		$(call APT_INSTALL,python3-venv) && $(PYTHON) -m venv $(VENV); \
	}

# torch first and pinned (the CPU build where pip finds it locally); stamps skip reinstalling
# until pyproject.toml changes
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet "$(TORCH)" -e ".[dev]"
	touch $@

demo: install
	$(PY) -m ddpm sample fashion-mnist --num 64 --seed 0 --out samples.png --gif denoising.gif
	@echo "Wrote samples.png and denoising.gif."
	@echo "Next, train your own model (about 10 minutes on 2 CPU cores):"
	@echo "  source .venv/bin/activate    # puts ddpm on the PATH (or call .venv/bin/ddpm)"
	@echo "  ddpm train --config fashion-mnist-demo --out runs/demo"
	@echo "  ddpm sample runs/demo --num 64 --out runs/demo/grid.png"

test: install-dev
	$(PY) -m pytest -q

test-all: install-dev
	$(PY) -m pytest -q -m "slow or not slow"

lint: install-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: install-dev
	cd benchmarks && ../$(PY) sampler_nfe.py

# the performance suite on this machine's CPU (about 90 minutes on 2 cores); on a GPU use
# benchmarks/gpu_perf_suite.sh
perf: install-dev
	cd benchmarks && ../$(PY) train_throughput.py --compile && ../$(PY) cpu_fast_path.py --compile && \
		../$(PY) sampling_time_to_quality.py && ../$(PY) training_time_to_quality.py --num 500 --fid
