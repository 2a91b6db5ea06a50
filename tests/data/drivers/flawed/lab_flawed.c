// SPDX-License-Identifier: GPL-2.0
/*
 * One planted finding per pre-submission check, for the tests of
 * lab driver --check (tests/integration/test_driver_check.py knows the lines).
 * It builds, and would load, but it is never loaded.
 */
#include <linux/init.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

static void __iomem *lab_flawed_base;

/* W=1 (-Wmissing-prototypes) and sparse: a global without a declaration */
int lab_flawed_helper(int x)
{
	return x + 1;
}

/* sparse: a cast that drops __iomem, to read the device as memory */
static u32 lab_flawed_peek(void)
{
	return *(u32 *)lab_flawed_base;
}

/* coccinelle and checkpatch: a needless NULL test before kfree() */
static void lab_flawed_free(void *p)
{
	if (p)
		kfree(p);
}

static int __init lab_flawed_init(void)
{
	int ret = 0;
	pr_info("lab_flawed: %d\n", lab_flawed_helper(ret));	/* checkpatch: no blank line */
	lab_flawed_free(NULL);
	return ret;
}

static void __exit lab_flawed_exit(void)
{
	if (lab_flawed_base)
		pr_info("lab_flawed: %u\n", lab_flawed_peek());
}

module_init(lab_flawed_init);
module_exit(lab_flawed_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("One planted finding per pre-submission check");
