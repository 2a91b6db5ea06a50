// SPDX-License-Identifier: GPL-2.0
/*
 * present: brings a clone of a snapshot template to the present, with no new
 * process in the clone.
 *
 *   present IN OUT
 *
 * The lab starts it in a template's guest before saving it, so it is already
 * running, blocked on the FIFO IN, in every clone. It makes both FIFOs, then
 * leaves a daemon of its own session behind and exits. For each line
 * "SECONDS NANOSECONDS HEX" it reads there, it sets the wall clock, mixes the
 * bytes HEX stands for into the kernel's random pool (writing /dev/urandom
 * credits no entropy), and answers "ok" (or "error: ...") on the FIFO OUT.
 *
 * A command that execs a program costs a fresh clone tens of milliseconds under
 * TCG, which has translated none of the guest's code yet; the shell's builtins
 * that talk to this process cost a few.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 512

static void answer(const char *out, const char *text)
{
	int fd = open(out, O_WRONLY);

	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0)
		perror("present: write");
	close(fd);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The bytes of hex into buf; how many, or -1 if hex is not even-length hex. */
static int unhex(const char *hex, unsigned char *buf, size_t size)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > size)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		buf[i] = (unsigned char)(hi << 4 | lo);
	}
	return (int)(n / 2);
}

static const char *handle(char *line, int urandom)
{
	struct timespec now;
	unsigned char seed[LINE_MAX_BYTES / 2];
	char hex[LINE_MAX_BYTES];
	long long sec;
	long nsec;
	int n;

	if (sscanf(line, "%lld %ld %511s", &sec, &nsec, hex) != 3 || nsec < 0 ||
	    nsec >= 1000000000L)
		return "error: not SECONDS NANOSECONDS HEX\n";
	n = unhex(hex, seed, sizeof(seed));
	if (n < 0)
		return "error: the seed is not hex\n";
	now.tv_sec = (time_t)sec;
	now.tv_nsec = nsec;
	if (clock_settime(CLOCK_REALTIME, &now) != 0)
		return "error: clock_settime failed\n";
	if (write(urandom, seed, n) != n)
		return "error: writing /dev/urandom failed\n";
	return "ok\n";
}

int main(int argc, char **argv)
{
	char line[LINE_MAX_BYTES];
	FILE *in;
	int urandom;

	if (argc != 3) {
		fprintf(stderr, "usage: present IN OUT\n");
		return 2;
	}
	for (int i = 1; i < 3; i++)
		if (mkfifo(argv[i], 0600) != 0 && errno != EEXIST) {
			perror("present: mkfifo");
			return 1;
		}
	switch (fork()) {
	case -1:
		perror("present: fork");
		return 1;
	case 0:
		break;
	default:
		return 0;
	}
	setsid();
	if (!freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout) ||
	    !freopen("/dev/null", "w", stderr))
		return 1;
	/* Read and write: the FIFO never reads as ended between two writers. */
	in = fopen(argv[1], "r+");
	urandom = open("/dev/urandom", O_WRONLY);
	if (!in || urandom < 0) {
		perror("present: open");
		return 1;
	}
	while (fgets(line, sizeof(line), in))
		answer(argv[2], handle(line, urandom));
	return 0;
}
