// SPDX-License-Identifier: GPL-2.0
/*
 * Source of a recorded fixture (tests/data/debug-reports/). The bug: a
 * structure freed while its timer is still armed. debugobjects prints
 * "ODEBUG: free active (active state 0) object type: timer_list" in a WARNING,
 * and deactivates the timer.
 */
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/timer.h>

struct odebug_timer_port {
	struct timer_list poll;
};

static void odebug_timer_poll(struct timer_list *t)
{
}

static int __init odebug_timer_init(void)
{
	struct odebug_timer_port *port;

	port = kzalloc(sizeof(*port), GFP_KERNEL);
	if (!port)
		return -ENOMEM;
	timer_setup(&port->poll, odebug_timer_poll, 0);
	mod_timer(&port->poll, jiffies + 60 * HZ);
	kfree(port);	/* The bug: del_timer_sync(&port->poll) is missing. */
	return 0;
}

static void __exit odebug_timer_exit(void)
{
}

module_init(odebug_timer_init);
module_exit(odebug_timer_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Frees an armed timer, for the lab's fixtures");
