// SPDX-License-Identifier: GPL-2.0
/*
 * labconsole: the guest's end of the lab's two virtio-serial channels.
 *
 *   /init                                (PID 1: the image's /init links here)
 *   labconsole shell PORT NONCEFILE READY PROG [ARG]...
 *   labconsole kmsg PORT
 *
 * init: the guest's PID 1, the first program the kernel runs. It sets the
 * guest up in one process: the mounts, the /dev a program expects, the
 * loopback interface up, the host name (and busybox's links, if the image has
 * none). Then it finds the lab's two virtserialports by name (there is no
 * udev; their nodes appear once the virtio-serial driver has probed, which may
 * be after /init starts), runs `shell` on lab.shell (READY, then /bin/sh -i)
 * and `kmsg` on lab.kmsg, each in a child of its own (named lab-shell and
 * lab-kmsg), and reaps every process handed to it for the guest's whole life (when
 * PID 1 was a shell, an orphan's exit could end it, and the kernel panicked:
 * "Attempted to kill init!"). READY is LAB_READY, which the lab builds in.
 * Done by a busybox sh script and applets, each step was a fork and an exec,
 * some 10-50 ms apiece under TCG, with the boot waiting for them.
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
 * and a shell that reads slowly slows the host: nothing is ever dropped. The
 * pty starts with echo off, and READY goes to PORT (on a line of its own) once
 * PROG is started: what the host sends from then on waits in the pty for PROG
 * to read it. PROG gets its tty's path as its last argument, and in $LAB_TTY.
 * When PROG ends, the relay forwards what it printed, writes
 * "\n@@LAB-X<nonce>@@<status>@@\n" (the nonce read from NONCEFILE, status as
 * sh's $?), and starts PROG again on a new pty.
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
 * read shows as a gap in the sequence numbers, which the lab reports. A line
 * the host writes to PORT asks for a barrier: everything the kernel logged
 * before it is forwarded, then the line comes back after SYNC (below). Under
 * init, the shell's relay also cues the forwarder with each count it stamps
 * (see cues), which is answered the same way without the host asking. The
 * lab waits for one of these before it reads a command's faults, so a warning
 * still on its way is not missed (the shell's port and this one are not
 * ordered with each other).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define BUF (64 * 1024)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* The most arguments PROG takes (its tty's path comes after them). */
#define MAX_ARGS 16
#ifndef LAB_READY
#error "build with -DLAB_READY='\"marker\"': what init's shell relay says when the shell is up"
#endif
/* init: where the lab leaves the nonce of its shell session, and how long the
 * lab's ports may take to appear.
 */
#define NONCE_FILE "/run/lab-shell-nonce"
#define PORT_WAIT_MS 10000
/* How long to leave a port alone whose host end is not connected (poll then
 * says POLLIN|POLLHUP and read says 0 at once).
 */
#define HOST_AWAY_MS 20
/*
 * kmsg: the host asks the forwarder to catch up by a line on its port (at most
 * SYNC_REQ bytes); once every record /dev/kmsg has then is forwarded, the
 * answer is SYNC, that line, "@@", on a line of its own.
 */
#define SYNC "@@LAB-SYNC@@"
#define SYNC_REQ 64

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

/*
 * init: the relay tells the kmsg forwarder each count it stamps, through this
 * pipe (-1: no forwarder). The forwarder then forwards every record logged so
 * far and answers SYNC "c" count "@@": the shell printed the count after its
 * command ended, so the command's kernel messages come before the answer, and
 * the lab need not ask (a request and its answer, on top of each command's
 * round trip, cost 0.6-0.9 ms under TCG; the cue travels beside the marker).
 */
static int cues[2] = { -1, -1 };

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

			unsigned long long count = port_sent + i;

			snprintf(digits, sizeof(digits), "%0*llu", (int)COUNT_DIGITS, count);
			memcpy(b->data + i, digits, COUNT_DIGITS);
			/* full (a forwarder far behind): a later cue covers this one */
			if (cues[1] >= 0 && write(cues[1], &count, sizeof(count)) < 0)
				errno = 0;
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

static pid_t start(char * const *argv, int *master)
{
	struct termios tio;
	char *slave;
	pid_t pid;
	int fd;

	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0 || grantpt(*master) || unlockpt(*master))
		die("posix_openpt");
	slave = ptsname(*master);
	if (!slave)
		die("ptsname");
	/* echo off from the start (the master sets the slave's termios): the
	 * lab's first line is not echoed (`lab shell` turns it on for a person)
	 */
	if (!tcgetattr(*master, &tio)) {
		tio.c_lflag &= ~(ECHO | ECHONL);
		tcsetattr(*master, TCSANOW, &tio);
	}
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char *args[MAX_ARGS + 2];
		sigset_t none;
		int sig, n;

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
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
		setenv("LAB_TTY", slave, 1);
		for (n = 0; argv[n] && n < MAX_ARGS; n++)
			args[n] = argv[n];
		args[n++] = slave;
		args[n] = NULL;
		execvp(args[0], args);
		die(args[0]);
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

static noreturn void run_shell(const char *path, const char *noncefile, const char *ready,
			       char * const *argv)
{
	int port;

	port = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (port < 0)
		die(path);
	if (pipe2(wake, O_NONBLOCK | O_CLOEXEC))
		die("pipe");
	signal(SIGCHLD, on_sigchld);
	/* a cue to a kmsg forwarder that is gone (or never started) is EPIPE,
	 * not the relay's end; PROG gets every signal back at its default
	 */
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		char nonce[64] = "", marker[128];
		int master, status, fd, n;
		pid_t pid = start(argv, &master);

		n = snprintf(marker, sizeof(marker), "\n%s\n", ready);
		write_all(port, marker, n);
		port_sent += n;
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

/* Forward what /dev/kmsg has now, until a read says it has no more (one record
 * per read; several records per port write).
 */
static void forward_records(int fd, int port)
{
	static char batch[BUF];
	ssize_t n = 0;

	while (n >= 0) {
		size_t len = 0;

		while (BUF - len >= 8192) {
			n = read(fd, batch + len, BUF - len);
			if (n < 0 && errno == EPIPE)
				continue;	/* overwritten: the lab sees the gap */
			if (n <= 0) {
				n = -1;
				break;
			}
			len += n;
		}
		if (len)
			write_all(port, batch, len);
	}
}

/* Answer the last whole request line in req (each one asked for all before it):
 * SYNC, the line, "@@". Keeps an unfinished line for the next read.
 */
static void answer(int port, char *req, size_t *have)
{
	char reply[sizeof(SYNC) + SYNC_REQ + 4], *end, *start;
	int n;

	end = memrchr(req, '\n', *have);
	if (!end) {
		if (*have >= SYNC_REQ)
			*have = 0;	/* no line that long is a request */
		return;
	}
	start = memrchr(req, '\n', end - req);
	start = start ? start + 1 : req;
	n = snprintf(reply, sizeof(reply), SYNC "%.*s@@\n", (int)(end - start), start);
	write_all(port, reply, n);
	*have -= end + 1 - req;
	memmove(req, end + 1, *have);
}

/* The highest count among the cues waiting in the pipe; 0 if none. */
static unsigned long long take_cues(int fd)
{
	unsigned long long got[64], top = 0;
	ssize_t n;
	size_t i;

	while ((n = read(fd, got, sizeof(got))) > 0)
		for (i = 0; i < n / sizeof(got[0]); i++)
			top = got[i] > top ? got[i] : top;
	return top;
}

static noreturn void forward_kmsg(const char *path, int cue)
{
	char req[SYNC_REQ], reply[sizeof(SYNC) + 32];
	size_t have = 0;
	int port, fd, away = 0;

	port = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (port < 0)
		die(path);
	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		die("/dev/kmsg");
	for (;;) {
		/* a port whose host end is away says POLLHUP at once: see above */
		struct pollfd p[3] = { { .fd = fd, .events = POLLIN },
				       { .fd = away ? -1 : port, .events = POLLIN },
				       { .fd = cue, .events = POLLIN } };
		unsigned long long count;
		ssize_t n;

		forward_records(fd, port);
		if (poll(p, 3, away ? HOST_AWAY_MS : -1) < 0 && errno != EINTR)
			die("poll /dev/kmsg");
		away = 0;
		if (p[2].revents & POLLIN) {
			count = take_cues(cue);
			forward_records(fd, port);
			n = snprintf(reply, sizeof(reply), SYNC "c%llu@@\n", count);
			write_all(port, reply, n);
		} else if (p[2].revents & (POLLHUP | POLLERR)) {
			cue = -1;	/* the relay is gone: poll would say so at once */
		}
		if (!(p[1].revents & (POLLIN | POLLHUP)))
			continue;
		n = read(port, req + have, sizeof(req) - have);
		if (n <= 0) {
			away = 1;	/* host end not connected: read says 0 */
			continue;
		}
		have += n;
		/* every record logged before the request goes out before the answer */
		forward_records(fd, port);
		answer(port, req, &have);
	}
}

/* Whether the kernel has a filesystem type (/proc/filesystems, read once:
 * "nodev\tsysfs\n", "\text4\n"). Mounting a type it lacks is not just a
 * failure: the kernel asks for a module first, a modprobe through the usermode
 * helper, which cost every boot 20-70 ms under TCG for hugetlbfs.
 */
static int have_fs(const char *type)
{
	static char list[4096];
	static int len = -1;
	char want[64];
	int fd;

	if (len < 0) {
		fd = open("/proc/filesystems", O_RDONLY | O_CLOEXEC);
		len = fd < 0 ? 0 : read(fd, list, sizeof(list) - 1);
		len = len < 0 ? 0 : len;
		list[len] = '\0';
		if (fd >= 0)
			close(fd);
	}
	snprintf(want, sizeof(want), "\t%s\n", type);
	return !!strstr(list, want);
}

/* A mount; one the guest needs is tried always, and its failure is said on
 * the console (boot goes on); one it can do without only when the kernel has
 * the filesystem.
 */
static void mount_fs(const char *type, const char *dir, const char *opts, int needed)
{
	if (!needed && !have_fs(type))
		return;
	if (mount(type, dir, type, 0, opts) && needed)
		fprintf(stderr, "lab-init: mount %s on %s: %s\n", type, dir, strerror(errno));
}

/* Wait for a child; its exit status as sh's $? (-1: no such child). */
static int run(char * const *argv)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execv(argv[0], argv);
		die(argv[0]);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void set_up(void)
{
	static const char * const links[][2] = {
		{ "/proc/self/fd", "/dev/fd" }, { "fd/0", "/dev/stdin" },
		{ "fd/1", "/dev/stdout" }, { "fd/2", "/dev/stderr" },
	};
	static char * const install[] = { "/bin/busybox", "--install", "-s", NULL };
	struct ifreq lo = { .ifr_name = "lo" };
	size_t i;
	int fd;

	mount_fs("proc", "/proc", NULL, 1);
	mount_fs("sysfs", "/sys", NULL, 1);
	mount_fs("devtmpfs", "/dev", NULL, 1);
	mount_fs("tmpfs", "/tmp", "mode=1777", 1);
	mount_fs("tmpfs", "/run", "mode=0755", 1);
	/* the /dev a program expects: the std* links, shared memory,
	 * pseudo-terminals, and what the kernel has of debugfs and hugetlbfs
	 */
	for (i = 0; i < ARRAY_SIZE(links); i++)
		symlink(links[i][0], links[i][1]);
	mkdir("/dev/shm", 01777);
	mkdir("/dev/pts", 0755);
	mkdir("/dev/hugepages", 0755);
	mount_fs("tmpfs", "/dev/shm", "mode=1777", 1);
	mount_fs("devpts", "/dev/pts", "gid=5,mode=620,ptmxmode=666", 0);
	mount_fs("debugfs", "/sys/kernel/debug", NULL, 0);
	mount_fs("hugetlbfs", "/dev/hugepages", NULL, 0);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && !ioctl(fd, SIOCGIFFLAGS, &lo)) {
		lo.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &lo))
			perror("lab-init: lo up");
	}
	if (fd >= 0)
		close(fd);
	if (sethostname("lab", 3))
		perror("lab-init: hostname");
	/* the image has busybox's links (made when it was packed); one
	 * without them gets them here
	 */
	if (access("/bin/ls", F_OK))
		run(install);
	setenv("HOME", "/root", 1);
	setenv("PATH", "/usr/bin:/bin:/usr/sbin:/sbin", 1);
}

/* The node of the virtserialport called name (/dev/vportNpM) in node, once it
 * is there: 0, or -1 when it is not (yet).
 */
static int find_port(const char *name, char *node, size_t size)
{
	DIR *ports = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int found = -1;

	while (ports && found && (e = readdir(ports))) {
		char path[300], got[64];
		int fd, n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, got, sizeof(got) - 1);
		close(fd);
		got[n > 0 ? n : 0] = '\0';
		got[strcspn(got, "\n")] = '\0';
		snprintf(node, size, "/dev/%s", e->d_name);
		if (!strcmp(got, name) && !access(node, F_OK))
			found = 0;
	}
	if (ports)
		closedir(ports);
	return found;
}

/* Wait up to PORT_WAIT_MS for a port's node. */
static int wait_port(const char *name, char *node, size_t size)
{
	int waited;

	for (waited = 0; find_port(name, node, size); waited += 10) {
		if (waited >= PORT_WAIT_MS)
			return -1;
		usleep(10000);
	}
	return 0;
}

/*
 * The kernel gives init /dev/console as its stdio, unless it could not open
 * it: on aarch64, hvc0 is registered by the virtio-serial driver's work queue,
 * which may come after the kernel opens the console ("unable to open an
 * initial console"). Then init's messages would go nowhere, and the first
 * files it opened would become a program's fds 0-2: they go to /dev/kmsg (a
 * node in the image, as /dev/console is, for before devtmpfs is mounted).
 */
static void stdio_or_kmsg(void)
{
	int fd, i;

	if (fcntl(0, F_GETFD) >= 0 && fcntl(2, F_GETFD) >= 0)
		return;
	fd = open("/dev/kmsg", O_WRONLY);
	for (i = 0; fd >= 0 && i < 3; i++)
		if (fd != i && fcntl(i, F_GETFD) < 0)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static int lab_init(const char *ready)
{
	static char * const shell[] = { "/bin/sh", "-i", NULL };
	char node[300];

	stdio_or_kmsg();
	set_up();
	if (wait_port("lab.shell", node, sizeof(node))) {
		static const char msg[] = "lab-init: no virtserialport named lab.shell\n";
		int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, msg, sizeof(msg) - 1) < 0)
			fputs(msg, stderr);
		return 1;	/* the kernel panics: the lab sees why */
	}
	if (pipe2(cues, O_NONBLOCK | O_CLOEXEC)) {	/* no cues: the lab asks */
		cues[0] = -1;
		cues[1] = -1;
	}
	/* each relay a child named for its job (its comm: `pidof lab-kmsg`) */
	if (fork() == 0) {
		prctl(PR_SET_NAME, "lab-shell");
		close(cues[0]);
		run_shell(node, NONCE_FILE, ready, shell);
	}
	/* the kernel log's forwarder starts second: the shell is what boot waits for */
	if (!wait_port("lab.kmsg", node, sizeof(node)) && fork() == 0) {
		prctl(PR_SET_NAME, "lab-kmsg");
		close(cues[1]);
		forward_kmsg(node, cues[0]);
	}
	close(cues[0]);
	close(cues[1]);
	for (;;)
		if (wait(NULL) < 0 && errno == ECHILD)
			sleep(1);
}

int main(int argc, char **argv)
{
	if (getpid() == 1)
		return lab_init(LAB_READY);
	if (argc >= 6 && !strcmp(argv[1], "shell"))
		run_shell(argv[2], argv[3], argv[4], argv + 5);
	if (argc == 3 && !strcmp(argv[1], "kmsg"))
		forward_kmsg(argv[2], -1);
	fprintf(stderr, "usage: labconsole shell PORT NONCEFILE READY PROG [ARG]...\n"
			"       labconsole kmsg PORT\n");
	return 2;
}
