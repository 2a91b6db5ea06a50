// SPDX-License-Identifier: GPL-2.0
/*
 * A broken module for the lab's debug kernel. The bug: a lock-order
 * inversion. The transmit path takes tx_lock then rx_lock, the receive path
 * rx_lock then tx_lock. Init runs each once, one after the other, so nothing
 * deadlocks here; two CPUs running them at once could. Both are noinline, so
 * that each path has its own name in the report.
 * Detector: lockdep, "WARNING: possible circular locking dependency detected".
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/mutex.h>

static DEFINE_MUTEX(lock_order_tx_lock);
static DEFINE_MUTEX(lock_order_rx_lock);
static unsigned int lock_order_events;

static noinline void lock_order_transmit(void)
{
	mutex_lock(&lock_order_tx_lock);
	mutex_lock(&lock_order_rx_lock);
	lock_order_events++;
	mutex_unlock(&lock_order_rx_lock);
	mutex_unlock(&lock_order_tx_lock);
}

static noinline void lock_order_receive(void)
{
	/* The bug: the opposite order of lock_order_transmit(). */
	mutex_lock(&lock_order_rx_lock);
	mutex_lock(&lock_order_tx_lock);
	lock_order_events++;
	mutex_unlock(&lock_order_tx_lock);
	mutex_unlock(&lock_order_rx_lock);
}

static int __init lock_order_init(void)
{
	lock_order_transmit();
	lock_order_receive();
	return 0;
}

static void __exit lock_order_exit(void)
{
}

module_init(lock_order_init);
module_exit(lock_order_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Takes two locks in both orders, for the lab's debug kernel");
