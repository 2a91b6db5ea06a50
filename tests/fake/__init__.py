"""Fakes for the fast test tier: a kernel tree (linux/) and host tools (bin/)."""
