// SPDX-License-Identifier: GPL-2.0
/*
 * A broken module for the lab's debug kernel. The bug: a leak on unload.
 * leak_init() allocates a buffer and keeps it in a static; leak_exit() forgets
 * to free it. While the module is loaded the static refers to the buffer;
 * once it is unloaded nothing does.
 * Detector: kmemleak, "unreferenced object 0x... (size 256)" on a scan after
 * the unload. Not the first scan: kmemleak reports an object only when its
 * contents are unchanged since the scan before.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

#define LEAK_BUF_SIZE 200

static char *leak_buf;

static int __init leak_init(void)
{
	leak_buf = kzalloc(LEAK_BUF_SIZE, GFP_KERNEL);
	if (!leak_buf)
		return -ENOMEM;
	strscpy(leak_buf, "lab leak: never freed", LEAK_BUF_SIZE);
	return 0;
}

static void __exit leak_exit(void)
{
	/* The bug: kfree(leak_buf) is missing. */
}

module_init(leak_init);
module_exit(leak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Leaks a buffer on unload, for the lab's debug kernel");
