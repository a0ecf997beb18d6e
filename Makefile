# refrad_builder: every target sets itself up (venv + package) on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
REFRAD := $(VENV)/bin/refrad
# The demo inputs carry planted fake PHI: they stay outside out/, which holds only outputs.
DEMO   ?= demo-inputs
WORK   ?= out/work
OUT    ?= out/shards
STUDIES ?= 6
# Your own data: make shards CONFIG=my.yaml (work_dir/out_dir from the file unless WORK/OUT given)
CONFIG ?=
STAGES := ingest deid report volume segment slices text

ifeq ($(CONFIG),)
RUNCFG = --config $(DEMO)/config.yaml --work $(WORK) --out $(OUT)
CFGDEP = $(DEMO)/config.yaml
else
RUNCFG = --config $(CONFIG) $(if $(filter command line,$(origin WORK)),--work $(WORK)) $(if $(filter command line,$(origin OUT)),--out $(OUT))
CFGDEP =
endif

.PHONY: install shards demo test test-llm eval lint format schemas bench status validate clean train gpu-prep gpu-check $(STAGES)

# torch==2.13.0 in the same pip command as the segment extra: it is the CPU build on disk;
# asked for separately, pip may swap it for a CUDA build of several GB.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet torch==2.13.0 -e '.[dev,segment,train]'
	touch $@

# llama-cpp-python builds from source the first time (12-40 min on 2 cores); pip caches the wheel.
$(VENV)/.installed-llm: $(VENV)/.installed
	CMAKE_ARGS=-DGGML_NATIVE=OFF $(VENV)/bin/pip install --quiet -e '.[llm-local]'
	touch $@

# The trainer's extra; torch==2.13.0 in the same command (see above).
$(VENV)/.installed-train: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet torch==2.13.0 -e '.[train]'
	touch $@

install: $(VENV)/.installed

$(DEMO)/config.yaml: | $(VENV)/.installed
	$(REFRAD) demo make $(DEMO) --studies $(STUDIES)

demo: $(VENV)/.installed
	$(REFRAD) demo make $(DEMO) --studies $(STUDIES)

## The whole DAG on the embedded default (or CONFIG=...), then validation and per-stage counts.
shards: $(VENV)/.installed $(CFGDEP)
	$(REFRAD) run $(RUNCFG)
	$(REFRAD) status $(RUNCFG)

## One stage at a time: make deid, make segment, ... (reruns only what is not done)
$(STAGES): $(VENV)/.installed $(CFGDEP)
	$(REFRAD) run $(RUNCFG) --only $@

status: $(VENV)/.installed
	$(REFRAD) status $(RUNCFG)

validate: $(VENV)/.installed
	$(REFRAD) validate $(OUT)

# System tools some tests use for real: tesseract (the OCR check of the burned-in policy)
# and Chromium (the preview screenshot). Installed with apt when running as root.
$(VENV)/.sysdeps: | $(VENV)/.installed
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  command -v tesseract >/dev/null || missing="$$missing tesseract-ocr"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	fi
	touch $@

test: $(VENV)/.installed $(VENV)/.sysdeps
	$(VENV)/bin/pytest -q

test-llm: $(VENV)/.installed-llm
	$(VENV)/bin/pytest -q -m llm tests/test_llm_local.py

## Measured quality of report de-identification and report understanding (project corpora).
eval: $(VENV)/.installed
	$(PY) -m refrad_builder.reports.evaluate
	$(PY) -m refrad_builder.reports.evaluate_mentions

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schemas: $(VENV)/.installed
	$(PY) -m refrad_builder.publish.schema_gen schemas

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

## Train the tiny model on the shards (CPU), then evaluate it: out/train/ckpt.pt, out/train/eval/
## Every demo slice has boxes: without grounded_first=false tiny would never see a caption or a
## VQA item, and the evaluation scores all three tasks.
TRAIN_OUT ?= out/train
TRAIN_SET ?= data.grounded_first=false
train: $(VENV)/.installed-train shards
	$(PY) -m refrad_builder.train.train --config tiny --shards $(OUT) --out $(TRAIN_OUT) \
		$(foreach s,$(TRAIN_SET),--set $(s))
	$(PY) -m refrad_builder.train.evaluate $(TRAIN_OUT)/ckpt.pt $(OUT) --split auto --out $(TRAIN_OUT)/eval

## On a CPU machine: shards and the webdataset wheels (.whl/) to carry to a GPU machine.
gpu-prep: $(VENV)/.installed-train shards
	mkdir -p .whl
	$(VENV)/bin/pip download --quiet --no-deps --dest .whl webdataset braceexpand

## On the GPU machine (after gpu-prep): base for STEPS steps, then one PaliGemma bf16 step.
gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf out demo-inputs
