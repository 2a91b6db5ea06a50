"""A running guest: QEMU's command line and process, QMP, the serial consoles
and the shell protocol over them, the device-under-test UART, snapshot
templates and restores, and Guest, which puts them together.
"""
