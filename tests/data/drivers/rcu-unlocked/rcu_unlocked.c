// SPDX-License-Identifier: GPL-2.0
/*
 * Source of a recorded fixture (tests/data/debug-reports/). The bug: an RCU
 * pointer dereferenced outside rcu_read_lock(). Lockdep (PROVE_RCU) prints
 * "WARNING: suspicious RCU usage".
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/rcupdate.h>

struct rcu_unlocked_cfg {
	int baud;
};

static struct rcu_unlocked_cfg rcu_unlocked_default = { .baud = 115200 };
static struct rcu_unlocked_cfg __rcu *rcu_unlocked_cfg;

static int __init rcu_unlocked_init(void)
{
	struct rcu_unlocked_cfg *cfg;

	RCU_INIT_POINTER(rcu_unlocked_cfg, &rcu_unlocked_default);
	cfg = rcu_dereference(rcu_unlocked_cfg);	/* The bug: no rcu_read_lock(). */
	pr_info("rcu_unlocked: baud %d\n", cfg->baud);
	return 0;
}

static void __exit rcu_unlocked_exit(void)
{
}

module_init(rcu_unlocked_init);
module_exit(rcu_unlocked_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Dereferences an RCU pointer unlocked, for the lab's fixtures");
