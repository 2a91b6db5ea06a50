/*
 * timeout: run a command with a time limit, as coreutils' timeout(1) does.
 *
 * The guests' busybox timeout rejects --foreground (kselftest's runner.sh calls
 * `timeout --foreground T timeout T test`, so every test failed with exit 1) and
 * reads a duration of 0 as "at once" where coreutils reads "no limit" (suites
 * whose settings say timeout=0 were killed at once). This one is built into
 * /usr/bin/timeout, the path runner.sh calls; bash finds it first in PATH, but a
 * bare `timeout` in busybox's sh is still busybox's own applet.
 *
 *   timeout [--foreground] [--preserve-status] [-s SIG] [-k DUR] [-v] DUR CMD [ARG]...
 *
 * DUR: a number with an optional suffix s, m, h or d; 0 means no limit.
 * Exit status: 124 if the command timed out (its own with --preserve-status),
 * 125 if timeout itself failed, 126 if CMD could not run, 127 if it was not
 * found, else the command's (128+N if signal N ended it).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_TIMEDOUT 124
#define EXIT_CANCELED 125
#define EXIT_CANNOT_INVOKE 126
#define EXIT_ENOENT 127

static volatile sig_atomic_t timed_out;
static volatile pid_t child;
static int term_signal = SIGTERM;
static int foreground, verbose;
static double kill_after;

static const struct { const char *name; int number; } signals[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
	{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
	{ "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "PIPE", SIGPIPE }, { "CHLD", SIGCHLD },
};

static void usage(void)
{
	fprintf(stderr, "usage: timeout [--foreground] [--preserve-status] [-s SIGNAL] "
		"[-k DURATION] [-v] DURATION COMMAND [ARG]...\n");
	exit(EXIT_CANCELED);
}

static double duration(const char *text)
{
	char *end;
	double value = strtod(text, &end);
	double scale = 1;

	if (end == text || value < 0)
		goto bad;
	if (*end && end[1] == '\0') {
		switch (*end) {
		case 's': break;
		case 'm': scale = 60; break;
		case 'h': scale = 3600; break;
		case 'd': scale = 86400; break;
		default: goto bad;
		}
	} else if (*end) {
		goto bad;
	}
	return value * scale;
bad:
	fprintf(stderr, "timeout: invalid time interval '%s'\n", text);
	exit(EXIT_CANCELED);
}

static int signal_number(const char *text)
{
	char *end;
	long n = strtol(text, &end, 10);
	size_t i;

	if (end != text && *end == '\0' && n > 0 && n < NSIG)
		return (int)n;
	if (strncasecmp(text, "SIG", 3) == 0)
		text += 3;
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (strcasecmp(text, signals[i].name) == 0)
			return signals[i].number;
	fprintf(stderr, "timeout: invalid signal '%s'\n", text);
	exit(EXIT_CANCELED);
}

/* A timer of `seconds` (0: none) that raises SIGALRM. */
static void arm(double seconds)
{
	struct itimerval t = { { 0, 0 }, { 0, 0 } };

	if (seconds <= 0)
		return;
	if (seconds > 1e8)
		seconds = 1e8;
	t.it_value.tv_sec = (time_t)seconds;
	t.it_value.tv_usec = (suseconds_t)((seconds - (double)t.it_value.tv_sec) * 1e6);
	if (t.it_value.tv_sec == 0 && t.it_value.tv_usec == 0)
		t.it_value.tv_usec = 1;
	setitimer(ITIMER_REAL, &t, NULL);
}

/* To the whole group, the signal is ignored here first, so it does not loop back. */
static void send_signal(pid_t where, int sig)
{
	if (where == 0)
		signal(sig, SIG_IGN);
	kill(where, sig);
}

static void on_signal(int sig)
{
	if (sig == SIGALRM) {
		timed_out = 1;
		sig = term_signal;
	}
	if (child <= 0)
		return;
	if (kill_after > 0) {
		term_signal = SIGKILL;
		arm(kill_after);
		kill_after = 0;
	}
	if (verbose)
		write(2, "timeout: sending signal to command\n", 35);
	send_signal(child, sig);
	if (!foreground) {
		send_signal(0, sig);
		if (sig != SIGKILL && sig != SIGCONT) {
			send_signal(child, SIGCONT);
			send_signal(0, SIGCONT);
		}
	}
}

static void catch_signals(void)
{
	static const int caught[] = { SIGALRM, SIGINT, SIGQUIT, SIGHUP, SIGTERM };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		sigaction(caught[i], &sa, NULL);
	sigaction(term_signal, &sa, NULL);
}

static int parse_options(int argc, char **argv, int *preserve)
{
	static const struct option longs[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "preserve-status", no_argument, NULL, 'p' },
		{ "kill-after", required_argument, NULL, 'k' },
		{ "signal", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+k:s:v", longs, NULL)) != -1) {
		switch (c) {
		case 'f': foreground = 1; break;
		case 'p': *preserve = 1; break;
		case 'k': kill_after = duration(optarg); break;
		case 's': term_signal = signal_number(optarg); break;
		case 'v': verbose = 1; break;
		default: usage();
		}
	}
	if (argc - optind < 2)
		usage();
	return optind;
}

static void run_child(char **argv)
{
	signal(SIGTTIN, SIG_DFL);
	signal(SIGTTOU, SIG_DFL);
	execvp(argv[0], argv);
	fprintf(stderr, "timeout: failed to run command '%s': %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? EXIT_ENOENT : EXIT_CANNOT_INVOKE);
}

int main(int argc, char **argv)
{
	int preserve = 0, status;
	int first = parse_options(argc, argv, &preserve);
	double limit = duration(argv[first]);
	pid_t pid;

	if (!foreground)
		setpgid(0, 0);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	catch_signals();
	pid = fork();
	if (pid < 0) {
		perror("timeout: fork");
		return EXIT_CANCELED;
	}
	if (pid == 0)
		run_child(argv + first + 1);
	child = pid;
	arm(limit);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("timeout: waitpid");
			return EXIT_CANCELED;
		}
	}
	if (WIFSIGNALED(status))
		status = 128 + WTERMSIG(status);
	else
		status = WEXITSTATUS(status);
	return timed_out && !preserve ? EXIT_TIMEDOUT : status;
}
