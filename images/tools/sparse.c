// SPDX-License-Identifier: GPL-2.0
/*
 * sparse: demand paging makes sparse memory cheap in RSS, but the page
 * tables that map it live in the kernel and grow with the spread.
 *
 *   sparse [PAGES]
 *
 * For strides of 4 KiB, 2 MiB and 1 GiB: reserve PAGES * stride of address
 * space (MAP_NORESERVE), touch one byte every stride, and read before and
 * after the process's RSS (VmRSS) and page tables (VmPTE, exact) and the
 * system's PageTables (/proc/meminfo, batched per CPU, so it lags by a few
 * pages). Per stride:
 *
 *   METRIC rss_kib_<stride> <growth of VmRSS> KiB
 *   METRIC pagetables_kib_<stride> <growth of VmPTE> KiB
 *   METRIC meminfo_pagetables_kib_<stride> <growth of PageTables> KiB
 *   METRIC pt_bytes_per_page_<stride> <VmPTE bytes per touched page> bytes
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static long read_kib(const char *file, const char *key)
{
	char line[256];
	long value = -1;
	FILE *f = fopen(file, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			value = atol(line + strlen(key));
	fclose(f);
	return value;
}

int main(int argc, char **argv)
{
	long pages = argc > 1 ? atol(argv[1]) : 256;
	const struct {
		const char *name;
		unsigned long stride;
	} strides[] = {
		{ "4k", 4096UL },
		{ "2m", 2UL << 20 },
		{ "1g", 1UL << 30 },
	};

	if (pages <= 0) {
		fprintf(stderr, "usage: sparse [PAGES]\n");
		return 2;
	}
	for (int s = 0; s < 3; s++) {
		unsigned long size = strides[s].stride * pages;
		long rss, pt, sys;
		char *mem;

		mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (mem == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		rss = read_kib("/proc/self/status", "VmRSS:");
		pt = read_kib("/proc/self/status", "VmPTE:");
		sys = read_kib("/proc/meminfo", "PageTables:");
		for (long i = 0; i < pages; i++)
			mem[i * strides[s].stride] = 1;
		rss = read_kib("/proc/self/status", "VmRSS:") - rss;
		pt = read_kib("/proc/self/status", "VmPTE:") - pt;
		sys = read_kib("/proc/meminfo", "PageTables:") - sys;
		printf("# stride %s: %lu MiB reserved, %ld pages touched\n",
		       strides[s].name, size >> 20, pages);
		printf("METRIC rss_kib_%s %ld KiB\n", strides[s].name, rss);
		printf("METRIC pagetables_kib_%s %ld KiB\n", strides[s].name, pt);
		printf("METRIC meminfo_pagetables_kib_%s %ld KiB\n", strides[s].name, sys);
		printf("METRIC pt_bytes_per_page_%s %.1f bytes\n", strides[s].name,
		       pt * 1024.0 / pages);
		munmap(mem, size);
	}
	return 0;
}
