/*
 * common.h - pieces shared by the shmio C examples (producer.c, consumer.c, queue_stat.c;
 * memsync.c and dirty_writer.c use only the exit statuses and report_failure()).
 *
 * The record is the one of the classic SysV shared-memory demo: a fixed
 * 80-byte text field.  shmio replaces the shmget() array, the lock file and
 * the fcntl() record locks with a broadcast queue: one producer, any number
 * of consumers, each with its own read position.
 */
#ifndef SHMIO_EXAMPLES_COMMON_H
#define SHMIO_EXAMPLES_COMMON_H

#include <shmio.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Queue used when -q is not given. */
#define DEMO_QUEUE_NAME "shmio_demo"
/* Slots asked for by default (shmio rounds up to a power of two: 16). */
#define DEMO_QUEUE_SIZE 10
/* Text of record N. */
#define DEMO_RECORD_FMT "write Data : %llu"

/* One record, as written by the producer. */
struct data {
    char name[80];
};

/* Exit statuses of the examples. */
enum {
    EXIT_OK = 0,
    EXIT_FAILURE_OTHER = 1,   /* any error not listed below */
    EXIT_USAGE = 2,           /* bad arguments, queue cannot be created/opened */
    EXIT_PRODUCER_DIED = 3,   /* consumer: the producer died */
    EXIT_IDLE_TIMEOUT = 4,    /* consumer: -T expired without a record */
};

/* Set by SIGINT/SIGTERM; checked by the main loops. */
static volatile sig_atomic_t g_stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop_requested = 1;
}

/*
 * Installs the SIGINT/SIGTERM handler.  No SA_RESTART: a blocking shmio wait
 * then returns SHMIO_ERR_INTERRUPTED and the caller can look at the flag.
 */
static inline int install_stop_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    return 0;
}

/* Prints "PROG: WHAT: <detail> (<status>)" on stderr for a failed shmio call. */
static inline void report_failure(const char *prog, const char *what, shmio_status st)
{
    const char *detail = shmio_last_error_message();
    const char *name = shmio_status_str(st);

    if (name == NULL)
        name = "unknown status";
    if (detail != NULL && detail[0] != '\0')
        fprintf(stderr, "%s: %s: %s (%s)\n", prog, what, detail, name);
    else
        fprintf(stderr, "%s: %s: %s\n", prog, what, name);
}

/* Parses a decimal number in [0, max]; false on junk, sign or overflow. */
static inline bool parse_number(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/*
 * Length of the text held by a record of LEN bytes at REC.  Never trusts the
 * shared memory: it stops at LEN, at the end of the name field and at the
 * first NUL, and drops one trailing newline (records of the original demo
 * carried one).
 */
static inline size_t record_text_len(const void *rec, size_t len)
{
    const char *p = rec;
    size_t n = len < sizeof(struct data) ? len : sizeof(struct data);
    const char *nul = memchr(p, '\0', n);

    if (nul != NULL)
        n = (size_t)(nul - p);
    if (n > 0 && p[n - 1] == '\n')
        n--;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    return n;
}

/*
 * Writes the N bytes of text at P and a newline to OUT, one record per line:
 * control characters (a stray newline included) are shown as '?'.
 */
static inline void write_record_line(FILE *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        putc(ch < 0x20 || ch == 0x7f ? '?' : (int)ch, out);
    }
    putc('\n', out);
}

#endif /* SHMIO_EXAMPLES_COMMON_H */
