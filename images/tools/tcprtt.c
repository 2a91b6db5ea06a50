// SPDX-License-Identifier: GPL-2.0
/*
 * tcprtt: loopback TCP ping-pong, the articles' worst case for KPTI
 * (a syscall and a context switch on every message).
 *
 *   tcprtt [ROUND_TRIPS [REPEATS]]
 *
 * A forked child echoes one byte back over a TCP connection on 127.0.0.1;
 * the parent times ROUND_TRIPS round trips, REPEATS times, and prints:
 *
 *   METRIC tcp_rtt_ns <nanoseconds per round trip> ns
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

int main(int argc, char **argv)
{
	long trips = argc > 1 ? atol(argv[1]) : 2000;
	int repeats = argc > 2 ? atoi(argv[2]) : 5;
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int one = 1, lfd, fd;
	char byte = 'x';
	pid_t child;

	if (trips <= 0 || repeats <= 0) {
		fprintf(stderr, "usage: tcprtt [ROUND_TRIPS [REPEATS]]\n");
		return 2;
	}
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&addr, &len))
		die("listen");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		int c = accept(lfd, NULL, NULL);

		if (c < 0)
			die("accept");
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while (read(c, &byte, 1) == 1)
			if (write(c, &byte, 1) != 1)
				die("echo");
		_exit(0);
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int r = 0; r < repeats; r++) {
		double start = now_ns();

		for (long i = 0; i < trips; i++)
			if (write(fd, &byte, 1) != 1 || read(fd, &byte, 1) != 1)
				die("ping");
		printf("METRIC tcp_rtt_ns %.1f ns\n", (now_ns() - start) / trips);
	}
	close(fd);
	waitpid(child, NULL, 0);
	return 0;
}
