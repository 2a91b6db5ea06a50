// SPDX-License-Identifier: GPL-2.0
/*
 * A misc device whose write dereferences NULL, in a function of its own (not
 * in an __init section, which gdb's lx-symbols does not place): lab debug's
 * tests stop in oops_write_write() from the cell of `lab driver` that failed.
 */
#include <linux/compiler.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>

static int *oops_write_target;

static ssize_t oops_write_write(struct file *file, const char __user *buf,
				size_t count, loff_t *pos)
{
	return READ_ONCE(*oops_write_target) + count;
}

static const struct file_operations oops_write_fops = {
	.owner = THIS_MODULE,
	.write = oops_write_write,
};

static struct miscdevice oops_write_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "oops_write",
	.fops = &oops_write_fops,
};

module_misc_device(oops_write_dev);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Dereferences NULL when written, for lab debug's tests");
