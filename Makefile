# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed here.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
ARGS ?=

.PHONY: demo test setup bench start

setup: node_modules/.installed /usr/sbin/nats-server

node_modules/.installed: package.json package-lock.json
	npm ci
	touch $@

/usr/sbin/nats-server:
	command -v nats-server >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y nats-server; }

test: setup
	npm run typecheck
	npm run lint
	npm test

demo: setup
	npm run demo -- $(ARGS)

start: setup
	npm start

bench: setup
	npm run bench
