// SPDX-License-Identifier: GPL-2.0
/*
 * labconsole: the guest's end of the lab's two virtio-serial channels.
 *
 *   labconsole shell PORT NONCEFILE PROG [ARG]...
 *   labconsole kmsg PORT
 *
 * A virtserialport is lossless (QEMU keeps what the host socket cannot take yet
 * and the guest's writer waits), but it is not a tty: no echo control, no job
 * control, no ^C, and only one opener at a time.
 *
 * shell: holds PORT open for the guest's whole life and runs PROG on the slave
 * of a fresh pseudo-terminal, as the leader of a new session whose controlling
 * tty that is (so ^C reaches the foreground job). It relays both ways between
 * the pty master and PORT. Each direction has a buffer; while one is full the
 * relay stops reading its source, so a host that reads slowly slows the shell,
 * and a shell that reads slowly slows the host: nothing is ever dropped. When
 * PROG ends, the relay forwards what it printed, writes
 * "\n@@LAB-X<nonce>@@<status>@@\n" (the nonce read from NONCEFILE, status as
 * sh's $?), and starts PROG again on a new pty. PROG finds its tty's path in
 * $LAB_TTY.
 *
 * The relay counts every byte it writes to PORT. Where the shell prints COUNT
 * (below), the relay puts that count instead, as COUNT_DIGITS decimal digits:
 * the bytes written before it since labconsole started. The lab compares it
 * with where it received them, so a lost byte cannot go unnoticed, and asking
 * costs the shell nothing (reading the driver's debugfs count took 2-4 ms of
 * builtin reads per command under TCG).
 *
 * kmsg: copies /dev/kmsg records (one per read, "prio,seq,usec,flags;text\n"
 * plus " KEY=value" lines) to PORT, several per write when they come faster
 * than the port takes them. A record the ring buffer overwrote before it was
 * read shows as a gap in the sequence numbers, which the lab reports.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define BUF (64 * 1024)
/* How long to leave a port alone whose host end is not connected (poll then
 * says POLLIN|POLLHUP and read says 0 at once).
 */
#define HOST_AWAY_MS 20

struct pipe_buf {
	char data[BUF];
	size_t len;
};

/* What the shell prints to ask for the count; as long as the count it becomes. */
#define COUNT "\001LAB-TX-CNT\001"
#define COUNT_DIGITS (sizeof(COUNT) - 1)
/* How long the relay holds the start of a COUNT for the rest of it. */
#define COUNT_WAIT_MS 100
/*
 * A read of a full pty buffer means more is coming: the relay gathers up to
 * BATCH before it writes to the port (each write costs the guest an exit to
 * QEMU and an interrupt), unless the pty stays quiet for MORE_WAIT_MS.
 */
#define PTY_FULL 1024
#define BATCH (32 * 1024)
#define MORE_WAIT_MS 2
/*
 * Small writes in quick succession (a program's lines, each its own write to a
 * line-buffered tty): a read within SMALL_GAP_US of the last port write waits
 * GATHER_MS for the rest before it is sent. Each line its own port write took
 * 0.3 ms under TCG; the first output after a pause still goes at once.
 */
#define SMALL_GAP_US 500
#define GATHER_MS 1

/* Bytes written to the shell's port so far. */
static unsigned long long port_sent;

/* SIGCHLD wakes the relay's poll through this pipe (tinyconfig has no signalfd). */
static int wake[2];

static void on_sigchld(int sig)
{
	int saved = errno;

	(void)sig;
	if (write(wake[1], "", 1) < 0)
		errno = saved;	/* full: a wake-up is pending anyway */
	errno = saved;
}

static void die(const char *what)
{
	fprintf(stderr, "labconsole: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Write what fits; drop it from the buffer. -1 only on a real error. */
static int flush_some(int fd, struct pipe_buf *b)
{
	ssize_t n = write(fd, b->data, b->len);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	return 0;
}

/* Write up to len bytes of b to the shell's port, counted, and drop them from b
 * (*scanned, an offset in b, moves with them). -1 only on a real error.
 */
static int flush_port(int port, struct pipe_buf *b, size_t len, size_t *scanned)
{
	ssize_t n = write(port, b->data, len);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	*scanned -= n;
	port_sent += n;
	return 0;
}

/*
 * Put the count in place of each COUNT in b from *from on. Returns how many
 * bytes at the end must wait for more: the start of what may be a COUNT.
 */
static size_t stamp(struct pipe_buf *b, size_t *from)
{
	size_t i, k;

	for (i = *from; i < b->len; i++) {
		for (k = 0; k < COUNT_DIGITS && i + k < b->len; k++)
			if (b->data[i + k] != COUNT[k])
				break;
		if (k == COUNT_DIGITS) {
			char digits[COUNT_DIGITS + 1];

			snprintf(digits, sizeof(digits), "%0*llu", (int)COUNT_DIGITS,
				 port_sent + i);
			memcpy(b->data + i, digits, COUNT_DIGITS);
			i += COUNT_DIGITS - 1;
		} else if (i + k == b->len) {
			break;		/* a start of COUNT ends the buffer */
		}
	}
	*from = i;
	return b->len - i;
}

static long long now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

/* Read into the buffer's free room: bytes read, 0 at end, -1 would block. */
static ssize_t fill(int fd, struct pipe_buf *b)
{
	ssize_t n = read(fd, b->data + b->len, BUF - b->len);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? -1 : 0;
	b->len += n;
	return n;
}

static void write_all(int fd, const char *p, size_t len)
{
	struct pollfd w = { .fd = fd, .events = POLLOUT };

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			poll(&w, 1, HOST_AWAY_MS);
			continue;
		}
		if (n < 0)
			return;
		p += n;
		len -= n;
	}
}

static pid_t start(char **argv, int *master)
{
	char *slave;
	pid_t pid;
	int fd;

	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0 || grantpt(*master) || unlockpt(*master))
		die("posix_openpt");
	slave = ptsname(*master);
	if (!slave)
		die("ptsname");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		struct termios tio;
		sigset_t none;
		int sig;

		/* init started us in the background, so SIGINT and SIGQUIT are
		 * ignored, and an ignored signal stays ignored across exec: the
		 * shell's jobs would never see a ^C
		 */
		for (sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close(wake[0]);
		close(wake[1]);
		setsid();
		fd = open(slave, O_RDWR);
		if (fd < 0)
			die(slave);
		ioctl(fd, TIOCSCTTY, 0);
		/* echo off from the start: the lab's first line is not echoed
		 * (`lab shell` turns it on for a person)
		 */
		if (!tcgetattr(fd, &tio)) {
			tio.c_lflag &= ~(ECHO | ECHONL);
			tcsetattr(fd, TCSANOW, &tio);
		}
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
		setenv("LAB_TTY", slave, 1);
		execvp(argv[0], argv);
		die(argv[0]);
	}
	fcntl(*master, F_SETFL, O_NONBLOCK);
	return pid;
}

/* Forward what the program printed before it ended (all of it: the slave is
 * gone, so the master reads what is left, then EIO).
 */
static void drain(int port, int master, struct pipe_buf *out, size_t scanned)
{
	while (fill(master, out) > 0 || out->len) {
		stamp(out, &scanned);
		write_all(port, out->data, out->len);
		port_sent += out->len;
		out->len = 0;
		scanned = 0;
	}
}

/* Relay until the program ends; its status, as sh's $? would say it. */
static int relay(int port, int master, pid_t pid)
{
	static struct pipe_buf out, in;	/* pty to port, port to pty */
	size_t scanned = 0, hold = 0;	/* out: stamped so far; held back */
	int away = 0, more = 0, ws, n;	/* more: the pty has more coming */
	int gather = 0, gathered = 0;	/* waiting for small writes; done */
	long long wrote_at = 0;
	ssize_t got;

	out.len = 0;
	in.len = 0;
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = master,
			  .events = (out.len < BUF && !gather ? POLLIN : 0) |
				    (in.len ? POLLOUT : 0) },
			/*
			 * a port whose host end is away says POLLHUP at once:
			 * leave it out of this poll, which then only waits
			 */
			{ .fd = away ? -1 : port,
			  .events = (in.len < BUF ? POLLIN : 0) |
				    (out.len > hold && !more && !gather ?
				     POLLOUT : 0) },
			{ .fd = wake[0], .events = POLLIN },
		};

		n = poll(p, 3, gather ? GATHER_MS : more ? MORE_WAIT_MS :
			 away ? HOST_AWAY_MS : hold ? COUNT_WAIT_MS : -1);
		if (n < 0 && errno != EINTR)
			die("poll");
		if (n == 0 && gather) {
			gather = 0;
			gathered = 1;
		} else if (n == 0 && more) {
			more = 0;
		} else if (n == 0 && hold) {	/* the rest never came: no COUNT */
			scanned = out.len;
			hold = 0;
		}
		away = 0;
		if (p[2].revents & POLLIN) {
			char drop[64];

			while (read(wake[0], drop, sizeof(drop)) > 0)
				;
		}
		if (waitpid(pid, &ws, WNOHANG) == pid) {
			drain(port, master, &out, scanned);
			return WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
		}
		if (p[0].revents & (POLLIN | POLLHUP)) {
			got = fill(master, &out);
			if (got > 0)
				hold = stamp(&out, &scanned);
			more = got >= PTY_FULL && out.len < BATCH;
			gather = !more && !gathered && got > 0 &&
				 now_us() - wrote_at < SMALL_GAP_US;
			gathered = 0;
		}
		if (p[0].revents & POLLOUT)
			flush_some(master, &in);
		if (p[1].revents & POLLOUT && out.len > hold) {
			if (flush_port(port, &out, out.len - hold, &scanned) < 0)
				die("write to the port");
			wrote_at = now_us();
		}
		if (p[1].revents & POLLIN && fill(port, &in) == 0)
			away = 1;	/* host end not connected: read says 0 */
	}
}

static noreturn void run_shell(const char *path, const char *noncefile, char **argv)
{
	int port;

	port = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (port < 0)
		die(path);
	if (pipe2(wake, O_NONBLOCK | O_CLOEXEC))
		die("pipe");
	signal(SIGCHLD, on_sigchld);
	for (;;) {
		char nonce[64] = "", marker[128];
		int master, status, fd, n;
		pid_t pid = start(argv, &master);

		status = relay(port, master, pid);
		close(master);
		fd = open(noncefile, O_RDONLY);
		if (fd >= 0) {
			n = read(fd, nonce, sizeof(nonce) - 1);
			nonce[n > 0 ? n : 0] = '\0';
			close(fd);
		}
		n = snprintf(marker, sizeof(marker), "\n@@LAB-X%s@@%d@@\n", nonce, status);
		write_all(port, marker, n);
		port_sent += n;
		/* one write, one record (dprintf would lseek first, which
		 * /dev/kmsg refuses with EINVAL, and then write nothing)
		 */
		n = snprintf(marker, sizeof(marker),
			     "lab-init: the lab's shell exited with status %d; starting a new one\n",
			     status);
		fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, marker, n) < 0)
				perror("labconsole: /dev/kmsg");
			close(fd);
		}
	}
}

static noreturn void forward_kmsg(const char *path)
{
	static char batch[BUF];
	int port, fd;

	port = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (port < 0)
		die(path);
	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		die("/dev/kmsg");
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		size_t len = 0;

		/* one record per read; gather what is there, up to a batch */
		while (BUF - len >= 8192) {
			ssize_t n = read(fd, batch + len, BUF - len);

			if (n < 0 && errno == EPIPE)
				continue;	/* overwritten: the lab sees the gap */
			if (n <= 0)
				break;
			len += n;
		}
		if (len)
			write_all(port, batch, len);
		else if (poll(&p, 1, -1) < 0 && errno != EINTR)
			die("poll /dev/kmsg");
	}
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "shell"))
		run_shell(argv[2], argv[3], argv + 4);
	if (argc == 3 && !strcmp(argv[1], "kmsg"))
		forward_kmsg(argv[2]);
	fprintf(stderr, "usage: labconsole shell PORT NONCEFILE PROG [ARG]...\n"
			"       labconsole kmsg PORT\n");
	return 2;
}
