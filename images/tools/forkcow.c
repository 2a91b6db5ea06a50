// SPDX-License-Identifier: GPL-2.0
/*
 * forkcow: does a parent take page faults after fork(), and after
 * posix_spawn()? Does posix_spawn() stop only the calling thread?
 *
 *   forkcow [MIB [REPEATS]]
 *
 * For each repeat and each way (fork, spawn, none): touch MIB MiB, start a
 * child that way (it waits on a pipe, or execs), write one byte per page,
 * and count the parent's minor faults during the writes:
 *
 *   METRIC cow_faults_per_mib_fork <n> faults/MiB
 *   METRIC cow_faults_per_mib_spawn <n> faults/MiB
 *   METRIC cow_faults_per_mib_none <n> faults/MiB
 *
 * Then a second thread counts while the main thread calls posix_spawn()
 * 200 times; its progress during the spawns, against its progress alone
 * for as long, is
 *
 *   METRIC spawn_other_thread_progress <ratio> ratio
 *
 * (0 would mean posix_spawn() suspended the whole process).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double faults_after(const char *how, char *mem, size_t size, long page)
{
	char *argv[] = { "true", NULL };
	int fds[2] = { -1, -1 };
	pid_t child = 0;
	long before;

	memset(mem, 1, size);			/* every page present, written */
	if (!strcmp(how, "fork")) {
		if (pipe(fds))
			exit(1);
		child = fork();
		if (child == 0) {		/* wait until the parent is done */
			char c;

			close(fds[1]);
			if (read(fds[0], &c, 1) < 0)
				_exit(1);
			_exit(0);
		}
		close(fds[0]);
	} else if (!strcmp(how, "spawn")) {
		if (posix_spawnp(&child, "true", NULL, NULL, argv, environ))
			exit(1);
	}
	before = minflt();
	for (size_t off = 0; off < size; off += page)
		mem[off]++;
	before = minflt() - before;
	if (fds[1] >= 0)
		close(fds[1]);
	if (child > 0)
		waitpid(child, NULL, 0);
	return before / (size / 1048576.0);
}

static atomic_long counter;
static atomic_int stop;

static void *count(void *unused)
{
	while (!atomic_load(&stop))
		atomic_fetch_add(&counter, 1);
	return NULL;
}

static double other_thread_progress(void)
{
	char *argv[] = { "true", NULL };
	pthread_t thread;
	double start, spawning, alone;
	long during, after;

	pthread_create(&thread, NULL, count, NULL);
	start = now();
	atomic_store(&counter, 0);
	for (int i = 0; i < 200; i++) {
		pid_t child;

		if (posix_spawnp(&child, "true", NULL, NULL, argv, environ))
			exit(1);
		waitpid(child, NULL, 0);
	}
	spawning = now() - start;
	during = atomic_load(&counter);
	atomic_store(&counter, 0);
	start = now();
	while (now() - start < spawning)
		usleep(1000);			/* let it run, on its own */
	alone = now() - start;
	after = atomic_load(&counter);
	atomic_store(&stop, 1);
	pthread_join(thread, NULL);
	return (during / spawning) / (after / alone);
}

int main(int argc, char **argv)
{
	size_t size = (argc > 1 ? atol(argv[1]) : 16) * 1048576;
	int repeats = argc > 2 ? atoi(argv[2]) : 3;
	const char *ways[] = { "fork", "spawn", "none" };
	long page = sysconf(_SC_PAGESIZE);
	char *mem;

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || !size || repeats <= 0) {
		fprintf(stderr, "usage: forkcow [MIB [REPEATS]]\n");
		return 2;
	}
	for (int r = 0; r < repeats; r++)
		for (int w = 0; w < 3; w++)
			printf("METRIC cow_faults_per_mib_%s %.1f faults/MiB\n",
			       ways[w], faults_after(ways[w], mem, size, page));
	printf("METRIC spawn_other_thread_progress %.3f ratio\n",
	       other_thread_progress());
	return 0;
}
