// SPDX-License-Identifier: GPL-2.0
/*
 * labtools: the lab's guest tools (images/tools/NAME.c) as one static binary,
 * run by the name it is called by, as busybox runs its applets: the image has
 * /usr/bin/NAME linked to /usr/bin/labtools, and /init to it as well (labconsole
 * is the guest's PID 1).
 *
 * Each tool statically linked on its own carried its own copy of the C library,
 * some 600 KB: eight of them were half of the initramfs that the kernel unpacks
 * at every boot (10 MB took 0.25 s under TCG).
 *
 * The build compiles each tool with -Dmain=main_NAME and this file with
 * -DLAB_TOOLS='X(NAME) ...', one X per tool.
 */
#include <stdio.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* int main_NAME(int argc, char **argv), ..., one declaration for them all */
#define X(name) main_##name(int argc, char **argv),
int LAB_TOOLS no_more_tools;
#undef X

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
} tools[] = {
#define X(name) { #name, main_##name },
	LAB_TOOLS
#undef X
};

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	size_t i;

	name = name ? name + 1 : argv[0];
	if (!strcmp(name, "init"))	/* the image's /init: labconsole is PID 1 */
		name = "labconsole";
	for (i = 0; i < ARRAY_SIZE(tools); i++)
		if (!strcmp(name, tools[i].name))
			return tools[i].main(argc, argv);
	fprintf(stderr, "labtools: no tool named %s\n", name);
	return 127;
}
