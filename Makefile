# pneumo: two verbs, each doing its own set-up (virtual environment + install).
#   make results   train and evaluate the final model (papermill run of final_notebook.ipynb)
#   make test      run the test suite
# Both take DATA_DIR= (default data/chest_xray) and OUT_DIR= (default reports).

PYTHON   ?= python3
VENV     ?= .venv
DATA_DIR ?= data/chest_xray
OUT_DIR  ?= reports
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed

export DATA_DIR
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help setup test results segmenter bench distil lung-focus notebooks lab clean

help:
	@echo "make results [DATA_DIR=data/chest_xray] [OUT_DIR=reports]  train + evaluate the final model"
	@echo "make test    [DATA_DIR=data/chest_xray]                    run the tests"
	@echo "make bench   [DATA_DIR=...] [OUT_DIR=reports]      throughput and memory, original vs final"
	@echo "make distil  [DATA_DIR=...] [OUT_DIR=reports]      one network distilled from OUT_DIR/model.keras"
	@echo "make lung-focus [DATA_DIR=...] [OUT_DIR=reports]   lung_crop with its evidence asked into the lungs"
	@echo "make notebooks [DATA_DIR=...]   re-run every chapter in notebooks/ in place"
	@echo "make segmenter [MASKS_DIR=...] [DATA_DIR=...]  retrain the shipped lung-field model"
	@echo "make lab                        open the notebooks in JupyterLab"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# pneumo results checks the output folder and the data, then runs the final notebook
# into a staging folder and moves its results into OUT_DIR once it has finished.
results: $(STAMP)
	$(BIN)/pneumo results "$(DATA_DIR)" "$(OUT_DIR)"

# The lung-field model ships with the package (pneumo_helpers/lungs/lung_fields.keras);
# this trains it again from the adult lung masks and the pediatric training images.
MASKS_DIR ?= ../shared/data/lung_masks
segmenter: $(STAMP)
	$(BIN)/python -m pneumo_helpers.lungs.training "$(MASKS_DIR)" "$(DATA_DIR)"

bench: $(STAMP)
	@$(BIN)/pneumo check-output "$(OUT_DIR)" "$(DATA_DIR)" > /dev/null
	$(BIN)/python benchmarks/bench.py "$(DATA_DIR)" --out "$(OUT_DIR)/benchmarks" --model "$(OUT_DIR)/model.keras"

# The fast model for big folders (kept only if its validation instruments hold)
distil: $(STAMP)
	@$(BIN)/pneumo check-output "$(OUT_DIR)" "$(DATA_DIR)" > /dev/null
	$(BIN)/python benchmarks/distil.py "$(DATA_DIR)" --teacher "$(OUT_DIR)/model.keras" --out "$(OUT_DIR)/distilled"

# lung_crop trained with the evidence-outside-the-lungs penalty at several weights, 3 seeds
# each, on chapter 08's validation instruments (reuses chapter 08's cache in runs/08_lungs)
lung-focus: $(STAMP)
	$(BIN)/python benchmarks/lung_focus.py "$(DATA_DIR)" --out "$(OUT_DIR)/lung_focus"

# Chapters run in notebooks/: a relative DATA_DIR (from the project root) gets a ../
notebooks: $(STAMP)
	$(BIN)/pneumo check-data "$(DATA_DIR)"
	case "$(DATA_DIR)" in /*|~*) data="$(DATA_DIR)" ;; *) data="../$(DATA_DIR)" ;; esac; \
	for nb in notebooks/[0-9]*.ipynb; do \
		$(BIN)/papermill "$$nb" "$$nb" --cwd notebooks -p data_dir "$$data" || exit 1; \
	done

lab: $(STAMP)
	$(BIN)/python -m pip install -e '.[lab]'
	$(BIN)/jupyter lab

clean:
	rm -rf $(VENV) .pytest_cache
