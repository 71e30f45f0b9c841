# gengap: `make demo` runs the main job, `make test` runs the test suite.
# Both create .venv on first use; later runs reuse it.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean-venv

$(STAMP): pyproject.toml requirements/lock.txt requirements/torch.txt requirements/jax-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: anything wider can pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet -r requirements/torch.txt
	$(PY) -m pip install --quiet -c requirements/torch.txt -c requirements/lock.txt -e ".[all,dev]"
	# JAX env libraries whose metadata conflicts with the lock (see pyproject's jax extra).
	$(PY) -m pip install --quiet --no-deps -r requirements/jax-nodeps.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gengap sweep studies/levels_gap.toml

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	@# mypy cannot see through setuptools' editable finder: type-check via a gengap/ link instead.
	@mkdir -p .typecheck && ln -sfn "$(CURDIR)" .typecheck/gengap
	MYPYPATH=.typecheck $(VENV)/bin/mypy $(addprefix .typecheck/gengap/,core envs agents offline eval drivers scripts)

# pytest exits 5 when it ran no test: a suite that runs nothing is broken, so that fails too.
test: $(STAMP) lint
	$(PY) -m pytest -n 2 -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi; exit $$status

bench: $(STAMP)
	$(VENV)/bin/gengap bench envs

clean-venv:
	rm -rf $(VENV)
