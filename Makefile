# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed here.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
ARGS ?=

.PHONY: demo test setup bench start

setup: node_modules/.installed /usr/sbin/nats-server

node_modules/.installed: package.json package-lock.json
	npm ci
	touch $@

# The platform starts its own nats-server; the Debian package's system service would hold port 4222.
/usr/sbin/nats-server:
	command -v nats-server >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y nats-server && \
	  { $(SUDO) systemctl disable --now nats-server 2>/dev/null || true; }; }

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
