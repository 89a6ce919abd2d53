# pixelgres: the two commands of the Quick start, and a few helpers.
#   make demo   install what is missing, start the embedded cluster, run the demo pipeline
#   make test   install what is missing, run the whole test suite
.PHONY: setup demo test install bench bench-peers clean
VENV := .venv

setup:
	@scripts/setup.sh

demo: setup
	@$(VENV)/bin/pixelgres demo

test:
	@scripts/setup.sh --test
	@$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# install the extension into the detected PostgreSQL (what `setup` does last)
install:
	@eval "$$(scripts/pgenv.sh)"; $(MAKE) -s -C extension install PG_CONFIG=$$PG_BINDIR/pg_config

bench: setup
	$(VENV)/bin/python bench/summary.py

# W1, W3, W4, W5 on pixelgres and on Pixeltable, same data, same run (bench/peers/run.py); the first
# time it creates bench/peers/.venv with PyPI pixeltable. PEERS_ARGS='--n 20 --only w1' passes flags.
bench-peers: setup
	@bench/peers/setup.sh
	$(VENV)/bin/python bench/peers/run.py $(PEERS_ARGS)

clean:
	$(MAKE) -C extension clean PG_CONFIG=$$(scripts/pgenv.sh | sed -n 's/PG_BINDIR=//p')/pg_config
