// SPDX-License-Identifier: GPL-2.0
/*
 * Source of a recorded fixture (tests/data/debug-reports/). The bug: a mutex
 * taken under a spinlock. mutex_lock() may sleep, so DEBUG_ATOMIC_SLEEP prints
 * "BUG: sleeping function called from invalid context", and lockdep "[ BUG:
 * Invalid wait context ]" for a sleeping lock inside a spinning one.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>

static DEFINE_SPINLOCK(sleeping_lock_spin);
static DEFINE_MUTEX(sleeping_lock_mutex);

static int __init sleeping_lock_init(void)
{
	spin_lock(&sleeping_lock_spin);
	mutex_lock(&sleeping_lock_mutex);	/* The bug: may sleep. */
	mutex_unlock(&sleeping_lock_mutex);
	spin_unlock(&sleeping_lock_spin);
	return 0;
}

static void __exit sleeping_lock_exit(void)
{
}

module_init(sleeping_lock_init);
module_exit(sleeping_lock_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Takes a mutex under a spinlock, for the lab's fixtures");
