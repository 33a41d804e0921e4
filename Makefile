# The two commands a fresh machine needs (see README.md), plus a few conveniences.
VENV ?= .venv
PRESET ?= cartpole
PYTEST_ARGS ?=

.PHONY: train test test-fast bootstrap clean

bootstrap:
	bash scripts/bootstrap.sh

# Train locally on the embedded default (CartPole); installs what it needs first.
train: bootstrap
	$(VENV)/bin/muzero train $(PRESET)

# The whole test suite, slow learning tests included; installs what it needs first.
test:
	bash scripts/test.sh $(PYTEST_ARGS)

# Everything but the slow learning tests.
test-fast:
	bash scripts/test.sh -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
