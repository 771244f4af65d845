# The README's two commands: `make book` (the study with its default preset, then the book)
# and `make test`. Both create .venv on first use; everything is pinned in pyproject.toml.
VENV    ?= .venv
PY      := $(VENV)/bin/python
BENCH   := $(VENV)/bin/backbone-bench
PRESET  ?=
PRESET_ARG = $(if $(PRESET),--preset $(PRESET),)
SHARED  ?= $(abspath ../shared)
TORCH_INDEX ?=

# The offline mirror and weights beside the checkout (set them yourself elsewhere).
export BACKBONE_BENCH_DATA    ?= $(SHARED)/data
export BACKBONE_BENCH_WEIGHTS ?= $(SHARED)/weights

.PHONY: install test book study clean-book

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: pip takes this build from the local wheel cache where there is one;
	# TORCH_INDEX (the CI workflow: https://download.pytorch.org/whl/cpu) takes the CPU build, not CUDA's
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),) torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest

# the book from the recorded runs: never trains (it says which runs are missing)
book: install
	$(BENCH) study $(PRESET_ARG)

# train what the preset's grid still lacks, then build (hours on a CPU for the offline presets)
study: install
	$(BENCH) study $(PRESET_ARG) --run

clean-book:
	rm -rf _build
