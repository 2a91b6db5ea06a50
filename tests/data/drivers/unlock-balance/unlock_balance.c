// SPDX-License-Identifier: GPL-2.0
/*
 * Source of a recorded fixture (tests/data/debug-reports/). The bug: a mutex
 * unlocked that was never locked. Lockdep prints "WARNING: bad unlock balance
 * detected!".
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/mutex.h>

static DEFINE_MUTEX(unlock_balance_mutex);

static int __init unlock_balance_init(void)
{
	mutex_unlock(&unlock_balance_mutex);	/* The bug: never locked. */
	return 0;
}

static void __exit unlock_balance_exit(void)
{
}

module_init(unlock_balance_init);
module_exit(unlock_balance_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Unlocks a mutex it never locked, for the lab's fixtures");
