// SPDX-License-Identifier: GPL-2.0
/*
 * A broken module for the lab's debug kernel. The bug: an out-of-bounds read
 * of a FIFO array. oob_init() drains one byte more than the FIFO holds, so it
 * reads fifo[16] of a u8 fifo[16]. That byte is the first of the next member,
 * inside the allocation, so KASAN stays silent.
 * Detector: UBSAN, "UBSAN: array-index-out-of-bounds in .../oob.c" and
 * "index 16 is out of range for type 'u8 [16]'".
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/slab.h>

#define OOB_FIFO_SIZE 16

struct oob_port {
	u8 fifo[OOB_FIFO_SIZE];
	u32 head;
	u32 count;
};

/*
 * The bug: one more than the FIFO holds. A parameter, so the compiler cannot
 * see the bound and the read happens at run time.
 */
static unsigned int oob_drain = OOB_FIFO_SIZE + 1;
module_param(oob_drain, uint, 0444);
MODULE_PARM_DESC(oob_drain, "bytes to drain from the FIFO at load");

static int __init oob_init(void)
{
	struct oob_port *port;
	unsigned int i, sum = 0;

	port = kzalloc(sizeof(*port), GFP_KERNEL);
	if (!port)
		return -ENOMEM;
	for (i = 0; i < OOB_FIFO_SIZE; i++)
		port->fifo[i] = i;
	for (i = 0; i < oob_drain; i++)
		sum += port->fifo[i];
	pr_info("oob: drained %u bytes, sum %u\n", oob_drain, sum);
	kfree(port);
	return 0;
}

static void __exit oob_exit(void)
{
}

module_init(oob_init);
module_exit(oob_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Reads past a FIFO array, for the lab's debug kernel");
