# Two commands do everything on a fresh machine:
#   make demo   install, then draw garments from the pretrained Fashion-MNIST model
#   make test   install, then run the test suite
PYTHON ?= python3
PIP := $(PYTHON) -m pip
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: install data demo test test-all lint bench perf

install: data
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[test]"

data:
	@if [ ! -d $(FASHION_MNIST) ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -qq dataset-fashion-mnist || \
		{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; }; \
	fi

demo: install
	$(PYTHON) -m ddpm sample fashion-mnist --num 64 --seed 0 --out samples.png --gif denoising.gif
	@echo "Wrote samples.png and denoising.gif."
	@echo "Next, train your own model (about 10 minutes on 2 CPU cores):"
	@echo "  ddpm train --config fashion-mnist-demo --out runs/demo"
	@echo "  ddpm sample runs/demo --num 64 --out runs/demo/grid.png"

test: install
	$(PYTHON) -m pytest -q

test-all: install
	$(PYTHON) -m pytest -q -m "slow or not slow"

lint:
	ruff check . && ruff format --check .

bench: install
	cd benchmarks && $(PYTHON) sampler_nfe.py

# the performance suite on this machine's CPU (about 90 minutes on 2 cores); on a GPU use
# benchmarks/gpu_perf_suite.sh
perf: install
	cd benchmarks && $(PYTHON) train_throughput.py --compile && $(PYTHON) cpu_fast_path.py --compile && \
		$(PYTHON) sampling_time_to_quality.py && $(PYTHON) training_time_to_quality.py --num 500 --fid
