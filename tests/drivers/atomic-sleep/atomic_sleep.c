// SPDX-License-Identifier: GPL-2.0
/*
 * A broken module for the lab's debug kernel. The bug: a sleep in atomic
 * context. atomic_sleep_init() calls msleep() while it holds a spinlock, as
 * a driver that waits for its hardware under the port lock would.
 * Detector: the scheduler's atomic check (DEBUG_ATOMIC_SLEEP's family), "BUG:
 * scheduling while atomic". msleep() has no might_sleep() in 6.1, so "BUG:
 * sleeping function called from invalid context" is not printed; a mutex or a
 * GFP_KERNEL allocation under the lock would print it.
 */
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/spinlock.h>

static DEFINE_SPINLOCK(atomic_sleep_lock);

static int __init atomic_sleep_init(void)
{
	spin_lock(&atomic_sleep_lock);
	msleep(20);	/* The bug: msleep() sleeps, a spinlock holder must not. */
	spin_unlock(&atomic_sleep_lock);
	return 0;
}

static void __exit atomic_sleep_exit(void)
{
}

module_init(atomic_sleep_init);
module_exit(atomic_sleep_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Sleeps under a spinlock, for the lab's debug kernel");
