// SPDX-License-Identifier: GPL-2.0
/*
 * syscost: the cost of a null system call, measured in the guest.
 *
 *   syscost [ITERATIONS [REPEATS]]
 *
 * Times ITERATIONS raw getppid() calls with CLOCK_MONOTONIC, REPEATS times,
 * and prints one machine-readable line per repeat:
 *
 *   METRIC getppid_ns <nanoseconds per call> ns
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long iterations = argc > 1 ? atol(argv[1]) : 100000;
	int repeats = argc > 2 ? atoi(argv[2]) : 5;

	if (iterations <= 0 || repeats <= 0) {
		fprintf(stderr, "usage: syscost [ITERATIONS [REPEATS]]\n");
		return 2;
	}
	for (int r = 0; r < repeats; r++) {
		double start = now_ns();

		for (long i = 0; i < iterations; i++)
			syscall(SYS_getppid);
		printf("METRIC getppid_ns %.1f ns\n", (now_ns() - start) / iterations);
	}
	return 0;
}
