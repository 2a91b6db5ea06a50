"""lab: a QEMU hardware lab for kernel and driver developers."""

__version__ = "0.1.0"
