# Shortcuts; ./bootstrap does the work (and needs nothing but /bin/sh).
.PHONY: setup run test bench
setup:
	./bootstrap setup
run:
	./bootstrap run
test:
	./bootstrap test
bench: setup
	.venv/bin/python bench/build.py
	.venv/bin/python bench/boot.py
