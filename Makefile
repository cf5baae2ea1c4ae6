# The whole set-up: `make demo` or `make test` on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean bench browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# compileall: an editable install leaves the sources uncompiled, and where PYTHONDONTWRITEBYTECODE
# is set (this machine) every `medcloak` process compiled ~30 modules again (~0.03 s a start)
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -e '.[dev,scale]'
	$(BIN)/python -m compileall -q src/medcloak >/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/medcloak compare --preset demo --out runs/demo --jobs 2
	@echo "demo: open runs/demo/report.html (the verdict table: the default setting beside the paper's scheme; each setting's own study report is linked from it; a rerun skips finished stages; for the reader study: medcloak readers add runs/demo/settings/paper-L256 NAME, then readers serve runs/demo/settings/paper-L256)"

# Debian's chromium for the readers' browser test (Playwright drives it through executable_path).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get) for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium fonts-liberation fonts-dejavu-core >/dev/null; \
	  else echo "note: chromium not found and cannot apt-get it here; the browser test will be skipped"; fi; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
