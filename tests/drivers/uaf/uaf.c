// SPDX-License-Identifier: GPL-2.0
/*
 * A broken module for the lab's debug kernel. The bug: a use-after-free on
 * unload. uaf_exit() frees the port's state and then reads its counter for a
 * last message, as a shutdown path that frees too early would.
 * Detector: KASAN, "BUG: KASAN: use-after-free in uaf_exit".
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

struct uaf_port {
	u32 rx_count;
	u8 fifo[60];
};

static struct uaf_port *uaf_port;

static int __init uaf_init(void)
{
	uaf_port = kzalloc(sizeof(*uaf_port), GFP_KERNEL);
	if (!uaf_port)
		return -ENOMEM;
	uaf_port->rx_count = 42;
	return 0;
}

static void __exit uaf_exit(void)
{
	kfree(uaf_port);
	/* The bug: uaf_port was freed on the line above. */
	pr_info("uaf: %u bytes received\n", READ_ONCE(uaf_port->rx_count));
}

module_init(uaf_init);
module_exit(uaf_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Reads freed memory on unload, for the lab's debug kernel");
