// SPDX-License-Identifier: GPL-2.0
/*
 * Source of a recorded fixture (tests/data/debug-reports/). The bug: a buffer
 * allocated at load and its only pointer dropped, so kmemleak finds it
 * unreferenced while the module is still loaded: its backtrace then names
 * leak_lost_alloc [leak_lost], and after the unload shows a bare address.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/slab.h>

static noinline void *leak_lost_alloc(void)
{
	return kzalloc(96, GFP_KERNEL);
}

static int __init leak_lost_init(void)
{
	/* The bug: the buffer is neither kept nor freed. */
	if (!leak_lost_alloc())
		return -ENOMEM;
	return 0;
}

static void __exit leak_lost_exit(void)
{
}

module_init(leak_lost_init);
module_exit(leak_lost_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Drops its only pointer to a buffer, for the lab's fixtures");
