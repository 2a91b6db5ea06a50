// SPDX-License-Identifier: GPL-2.0
/*
 * procmem: /proc/PID/mem "punches through" page protections.
 *
 *   procmem
 *
 * 1. A write through /proc/self/mem into a PROT_READ mapping succeeds.
 * 2. A direct store to the same page raises SIGSEGV (caught).
 * 3. A process with another uid, and no ptrace rights over a process,
 *    cannot open that process's /proc/PID/mem for writing; one with the
 *    same uid can (with no Yama LSM, as in the lab's kernels).
 *
 * Prints one line per check, 1 for what the claim says, 0 otherwise:
 *
 *   METRIC mem_write_through_readonly <0|1> bool
 *   METRIC direct_store_faults <0|1> bool
 *   METRIC other_uid_mem_refused <0|1> bool
 *   METRIC same_uid_mem_allowed <0|1> bool
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static sigjmp_buf fault_jump;

static void on_segv(int sig)
{
	siglongjmp(fault_jump, 1);
}

/* In a child with uid CHILD_UID: can it open TARGET's mem for writing? */
static int can_open_mem(pid_t target, uid_t child_uid)
{
	char path[64];
	pid_t pid;
	int status;

	pid = fork();
	if (pid == 0) {
		int fd;

		if (setgid(child_uid) || setuid(child_uid))
			_exit(2);
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)target);
		fd = open(path, O_RDWR);
		if (fd < 0)
			printf("# uid %u opening %s: %s\n", (unsigned int)child_uid,
			       path, strerror(errno));
		fflush(stdout);
		_exit(fd >= 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	const char msg[] = "written through /proc/self/mem";
	struct sigaction sa = { .sa_handler = on_segv };
	volatile int faulted = 0;
	int fd, ok, pipefd[2];
	char *ro;
	pid_t target;

	setvbuf(stdout, NULL, _IOLBF, 0);	/* nothing buffered across fork() */
	ro = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fd = open("/proc/self/mem", O_RDWR);
	if (ro == MAP_FAILED || fd < 0) {
		perror("procmem");
		return 2;
	}
	ok = pwrite(fd, msg, sizeof(msg), (off_t)(unsigned long)ro) == sizeof(msg) &&
	     !memcmp(ro, msg, sizeof(msg));
	printf("# pwrite into the PROT_READ page: %s, page now reads \"%s\"\n",
	       ok ? "ok" : strerror(errno), ro);
	printf("METRIC mem_write_through_readonly %d bool\n", ok);

	sigaction(SIGSEGV, &sa, NULL);
	if (sigsetjmp(fault_jump, 1) == 0)
		*(volatile char *)ro = 'x';
	else
		faulted = 1;
	printf("METRIC direct_store_faults %d bool\n", faulted);

	/* A target owned by uid 1000 that waits on a pipe. */
	if (pipe(pipefd))
		return 2;
	target = fork();
	if (target == 0) {
		char c;

		if (setgid(1000) || setuid(1000))
			_exit(2);
		/* A uid change makes a process non-dumpable: undo that. */
		prctl(PR_SET_DUMPABLE, 1);
		close(pipefd[1]);
		if (read(pipefd[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(pipefd[0]);
	usleep(100000);
	printf("METRIC other_uid_mem_refused %d bool\n", !can_open_mem(target, 1001));
	printf("METRIC same_uid_mem_allowed %d bool\n", can_open_mem(target, 1000));
	close(pipefd[1]);
	waitpid(target, NULL, 0);
	return 0;
}
