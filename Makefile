# iPOKE pipeline. `make repro` runs the main job, `make test` the tests; both set up the environment first.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= uv
RUN := $(UV) run --frozen
MLFLOW_PORT ?= 5000
PREFECT_PORT ?= 4200
APP_PORT ?= 8000
DATASET ?= $(shell sed -n 's/^dataset: *\([^ #]*\).*/\1/p' params.yaml)

.PHONY: setup repro flow test test-fast eval bench bench-nll lint mlflow-ui prefect-ui serve deploy clean

setup:  ## install uv if missing, then the locked environment and the pretrained I3D/LPIPS/VGG16 weights
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv
	$(UV) sync --frozen
	$(RUN) python -m ipoke.pretrained

repro: setup  ## the main job: every DVC stage on params.yaml, under one MLflow parent run
	$(RUN) ipoke repro

flow: setup  ## the same DAG as a Prefect flow (retries, states, logs in the Prefect UI)
	$(RUN) python -m pipelines.flow

test: setup  ## the whole test suite
	$(RUN) pytest -q

test-fast: setup  ## tests without the slow integration ones
	$(RUN) pytest -q -m "not slow"

eval: setup  ## evaluate the trained pipeline, build the HTML report, print the results table
	$(RUN) ipoke repro evaluate report
	@cat reports/$(DATASET)/table.md
	@echo "report: reports/$(DATASET)/index.html (compare runs: dvc metrics diff, dvc exp show)"

bench: setup  ## throughput/latency benchmarks, written to bench/results/*.json
	@mkdir -p bench/results
	@for b in bench/bench_*.py; do [ $$b = bench/bench_cinn_nll.py ] && continue; echo "== $$b"; $(RUN) python $$b || exit 1; done

bench-nll: setup  ## NLL parity of our paper-layout cINN and the authors' layout on the demo's latents (after make repro; long)
	$(RUN) python bench/bench_cinn_nll.py --lr 1e-3 1e-4

lint: setup
	$(RUN) ruff check .

mlflow-ui: setup  ## MLflow UI on http://127.0.0.1:$(MLFLOW_PORT)
	$(RUN) mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT)

prefect-ui: setup  ## Prefect server + UI on http://127.0.0.1:$(PREFECT_PORT)
	$(RUN) prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

serve: setup  ## the poking web app for the trained model on http://127.0.0.1:$(APP_PORT) (API docs at /docs)
	$(RUN) ipoke serve --model models/$(DATASET)/pipeline --port $(APP_PORT)

clean:  ## remove pipeline outputs, caches and tracking data (keeps the environment)
	rm -rf data models outputs metrics plots reports mlflow.db mlruns mlartifacts bench/results test-artifacts .pytest_cache .ruff_cache

deploy: setup  ## register the nightly Prefect deployment (prefect.yaml) and run a worker for it
	$(RUN) prefect work-pool create ipoke-local --type process --overwrite
	IPOKE_PROJECT_DIR=$(CURDIR) $(RUN) prefect --no-prompt deploy --all
	$(RUN) prefect worker start --pool ipoke-local
