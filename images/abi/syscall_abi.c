// SPDX-License-Identifier: GPL-2.0
/*
 * syscall_abi: write() and exit() through raw system calls, with no C
 * library, in the register convention of the ABI it is built for (the
 * table of the seed article "Syscall ABI compatibility"):
 *
 *   ABI      number  arguments                     instruction
 *   x86_64   rax     rdi, rsi, rdx, r10, r8, r9    syscall
 *   i386     eax     ebx, ecx, edx, esi, edi, ebp  int $0x80
 *   aarch64  x8      x0-x5                         svc #0
 *   armv7    r7      r0-r6                         svc #0 (EABI)
 *
 * It prints "syscall-abi <abi>: write(2) and exit(2) by raw syscall" and
 * exits with the ABI's own code, which the scenario checks:
 * x86_64 64, i386 32, aarch64 164, armv7 132.
 */

#if defined(__x86_64__)
#define ABI		"x86_64"
#define EXIT_CODE	64
#define NR_WRITE	1
#define NR_EXIT		60

static long raw3(long nr, long a, long b, long c)
{
	long ret;

	asm volatile ("syscall"
		      : "=a" (ret)
		      : "a" (nr), "D" (a), "S" (b), "d" (c)
		      : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__i386__)
#define ABI		"i386"
#define EXIT_CODE	32
#define NR_WRITE	4
#define NR_EXIT		1

static long raw3(long nr, long a, long b, long c)
{
	long ret;

	asm volatile ("int $0x80"
		      : "=a" (ret)
		      : "a" (nr), "b" (a), "c" (b), "d" (c)
		      : "memory");
	return ret;
}
#elif defined(__aarch64__)
#define ABI		"aarch64"
#define EXIT_CODE	164
#define NR_WRITE	64
#define NR_EXIT		93

static long raw3(long nr, long a, long b, long c)
{
	register long x8 asm("x8") = nr;
	register long x0 asm("x0") = a;
	register long x1 asm("x1") = b;
	register long x2 asm("x2") = c;

	asm volatile ("svc #0"
		      : "+r" (x0)
		      : "r" (x8), "r" (x1), "r" (x2)
		      : "memory");
	return x0;
}
#elif defined(__arm__)
#define ABI		"armv7"
#define EXIT_CODE	132
#define NR_WRITE	4
#define NR_EXIT		1

static long raw3(long nr, long a, long b, long c)
{
	register long r7 asm("r7") = nr;
	register long r0 asm("r0") = a;
	register long r1 asm("r1") = b;
	register long r2 asm("r2") = c;

	asm volatile ("svc #0"
		      : "+r" (r0)
		      : "r" (r7), "r" (r1), "r" (r2)
		      : "memory");
	return r0;
}
#else
#error "no raw syscall convention for this ABI"
#endif

static const char message[] = "syscall-abi " ABI ": write(2) and exit(2) by raw syscall\n";

void _start(void)
{
	raw3(NR_WRITE, 1, (long)message, sizeof(message) - 1);
	raw3(NR_EXIT, EXIT_CODE, 0, 0);
	for (;;)
		;
}
