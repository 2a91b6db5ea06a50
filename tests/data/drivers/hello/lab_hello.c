// SPDX-License-Identifier: GPL-2.0
/*
 * A module that loads and unloads cleanly: the driver loop's smoke test must
 * pass on it.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int __init lab_hello_init(void)
{
	pr_info("lab_hello: loaded\n");
	return 0;
}

static void __exit lab_hello_exit(void)
{
	pr_info("lab_hello: unloaded\n");
}

module_init(lab_hello_init);
module_exit(lab_hello_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Loads and unloads, for the lab's tests");
