/*
 * no_futex_waitv: run a command under a seccomp filter that refuses futex_waitv(2) with EPERM,
 * as the default seccomp profiles of container runtimes did (Podman/CRI-O until 2026).
 *
 *   no_futex_waitv [--membarrier] CMD [ARGS...]
 *                                  install the filter, then execvp CMD (inherited by every
 *                                  thread and child it makes); with --membarrier the filter
 *                                  refuses membarrier(2) with EPERM too (a sandbox that
 *                                  lacks it, as gVisor and strict custom profiles do)
 *   no_futex_waitv [--membarrier] --check
 *                                  install the filter, call the refused calls itself; exit 0
 *                                  only if each failed with EPERM
 *
 * Every other system call is allowed. The filter checks the architecture first (a call made
 * through another ABI has other numbers) and allows anything from a foreign one.
 * Exit status 127 if the filter cannot be installed or CMD cannot be run.
 *
 * Built by tests/tests/containers.rs with cc -Wall -Wextra -Werror.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "no_futex_waitv: only x86_64 and aarch64 are supported"
#endif

/* The same number on x86_64 and aarch64 (and in the generic table); older headers lack it. */
#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif

/* With --membarrier, the second refused call; otherwise a number no call has. */
static unsigned also_refused = 0xffffffffu;

static int install_filter(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_futex_waitv, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, also_refused, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof code / sizeof code[0]),
        .filter = code,
    };
    /* Without CAP_SYS_ADMIN a filter may only be installed with no_new_privs set. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("no_futex_waitv: PR_SET_NO_NEW_PRIVS");
        return -1;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("no_futex_waitv: PR_SET_SECCOMP");
        return -1;
    }
    return 0;
}

/* futex_waitv(NULL, 0, 0, NULL, CLOCK_MONOTONIC): EINVAL from a kernel that has the call,
 * ENOSYS from one that lacks it, EPERM only from the filter. */
static int report(const char *call, long r)
{
    int err = r == -1 ? errno : 0;
    const char *what = r != -1         ? "succeeded"
                       : err == EPERM  ? "EPERM"
                       : err == EINVAL ? "EINVAL"
                       : err == ENOSYS ? "ENOSYS"
                                       : strerror(err);
    printf("%s: %s\n", call, what);
    return r == -1 && err == EPERM ? 0 : 1;
}

/* membarrier(MEMBARRIER_CMD_QUERY = 0, 0, 0) succeeds on every kernel that has the call. */
static int check(void)
{
    int bad = report("futex_waitv", syscall(__NR_futex_waitv, NULL, 0u, 0u, NULL, CLOCK_MONOTONIC));
    if (also_refused == (unsigned)__NR_membarrier)
        bad |= report("membarrier", syscall(__NR_membarrier, 0, 0u, 0));
    return bad;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--membarrier") == 0) {
        also_refused = (unsigned)__NR_membarrier;
        argc--;
        argv++;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: no_futex_waitv [--membarrier] --check | CMD [ARGS...]\n");
        return 127;
    }
    if (install_filter() != 0)
        return 127;
    if (strcmp(argv[1], "--check") == 0)
        return check();
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no_futex_waitv: cannot run %s: %s\n", argv[1], strerror(errno));
    return 127;
}
