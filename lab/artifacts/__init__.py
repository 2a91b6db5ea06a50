"""What the lab builds into the cache: kernels from Kconfig fragments, their
source, initramfs images with guest tools, guest files and kselftest. `build`
is the one entry point the layers above use.
"""
