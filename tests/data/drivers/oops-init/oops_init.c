// SPDX-License-Identifier: GPL-2.0
/*
 * A module whose init dereferences NULL. The driver loop's smoke test must
 * fail on it and name it.
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>

static int *oops_init_target;

static int __init oops_init_init(void)
{
	return READ_ONCE(*oops_init_target);
}

static void __exit oops_init_exit(void)
{
}

module_init(oops_init_init);
module_exit(oops_init_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Dereferences NULL in its init, for the lab's tests");
