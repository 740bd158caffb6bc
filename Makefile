# Docket: `make run` starts the service, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Two workers (pytest-xdist), each with its own PostgreSQL database; PYTEST_ARGS=-n0 runs serially.
PYTEST_ARGS ?= -n 2 --dist worksteal

.PHONY: run test lint format audit migrate migration demo bench-smoke clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/docket serve

test: $(STAMP) lint
	env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bot handlers models jobs tests bench tools
	$(BIN)/ruff format --check bot handlers models jobs tests bench tools
	$(BIN)/mypy bot handlers models jobs

format: $(STAMP)
	$(BIN)/ruff check --fix bot handlers models jobs tests bench tools
	$(BIN)/ruff format bot handlers models jobs tests bench tools

audit: $(STAMP)
	$(BIN)/python tools/audit.py

migrate: $(STAMP)
	$(BIN)/docket migrate

demo: $(STAMP)
	$(BIN)/docket demo

# Regenerate a migration after changing models/tables.py: make migration m="what changed"
migration: $(STAMP)
	rm -f /tmp/docket-migration.db
	DATABASE_URL=sqlite+aiosqlite:////tmp/docket-migration.db $(BIN)/docket migrate
	$(BIN)/python -c "from alembic import command; from bot.migrate import alembic_config; \
		command.revision(alembic_config('sqlite+aiosqlite:////tmp/docket-migration.db'), \
		message='$(m)', autogenerate=True)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
