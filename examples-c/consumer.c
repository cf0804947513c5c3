/*
 * consumer.c - prints the records of a shmio broadcast queue, one per line.
 *
 * The shmio version of the classic SysV demo consumer: no lock-file scan to
 * find where the producer is writing, no busy loop when it dies.  Each
 * consumer has its own position (newest or oldest record), is woken when a
 * record is committed, and learns whether the producer closed the queue
 * (exit 0) or died (exit 3).
 *
 * With -t THREADS the reading and the processing are split, as in the
 * original design notes: this thread copies each record into a malloc'd
 * struct data and hands the pointer to THREADS workers through a
 * shmio_tqueue; the workers print and free.
 *
 * usage: consumer [-q NAME] [-n COUNT] [--from newest|oldest] [-t THREADS] [-z] [-T MS]
 */
#include "common.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>

static const char *prog = "consumer";

#define MAX_THREADS 64
#define HANDOFF_CAPACITY 256

struct options {
    const char *queue;
    uint32_t start;             /* SHMIO_START_NEWEST or SHMIO_START_OLDEST */
    unsigned long long count;   /* records to print, if has_count */
    bool has_count;
    unsigned threads;           /* 0: print on the reading thread */
    bool zero_copy;
    int timeout_ms;             /* -1: wait for ever */
};

/* Where records go: printed here, or handed to worker threads. */
struct sink {
    pthread_mutex_t print_lock;     /* one whole line at a time on stdout */
    shmio_tqueue *handoff;          /* NULL without -t */
    pthread_t workers[MAX_THREADS];
    unsigned nworkers;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-q NAME] [-n COUNT] [--from newest|oldest] [-t THREADS] [-z] [-T MS]\n"
            "  -q, --queue NAME     queue name (default \"%s\")\n"
            "  -n, --count COUNT    exit 0 after COUNT records (default: until the queue closes)\n"
            "      --from WHERE     start at the newest record (default) or the oldest one held\n"
            "  -t, --threads N      print on N worker threads fed through a shmio_tqueue (1..%d)\n"
            "  -z, --zero-copy      read records in place (shmio_consumer_read + release)\n"
            "  -T, --timeout MS     give up (exit 4) after MS milliseconds without a record\n"
            "exit: 0 done or queue closed, 1 error, 2 bad arguments or queue cannot be opened,\n"
            "      3 producer died, 4 timeout\n",
            prog, DEMO_QUEUE_NAME, MAX_THREADS);
}

/* Returns -1 when the options are good, else the exit status. */
static int parse_options(int argc, char **argv, struct options *o)
{
    enum { OPT_FROM = 1000 };
    static const struct option longopts[] = {
        { "queue", required_argument, NULL, 'q' },
        { "count", required_argument, NULL, 'n' },
        { "from", required_argument, NULL, OPT_FROM },
        { "threads", required_argument, NULL, 't' },
        { "zero-copy", no_argument, NULL, 'z' },
        { "timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long long v;
    int ch;

    *o = (struct options){ .queue = DEMO_QUEUE_NAME, .start = SHMIO_START_NEWEST, .timeout_ms = -1 };
    while ((ch = getopt_long(argc, argv, "q:n:t:zT:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'q':
            if (optarg[0] == '\0') {
                fprintf(stderr, "%s: -q: empty queue name\n", prog);
                return EXIT_USAGE;
            }
            o->queue = optarg;
            break;
        case 'n':
            if (!parse_number(optarg, UINT64_MAX, &o->count)) {
                fprintf(stderr, "%s: -n: not a count: '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            o->has_count = true;
            break;
        case OPT_FROM:
            if (strcmp(optarg, "newest") == 0) {
                o->start = SHMIO_START_NEWEST;
            } else if (strcmp(optarg, "oldest") == 0) {
                o->start = SHMIO_START_OLDEST;
            } else {
                fprintf(stderr, "%s: --from: expected newest or oldest, got '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            break;
        case 't':
            if (!parse_number(optarg, MAX_THREADS, &v) || v == 0) {
                fprintf(stderr, "%s: -t: expected 1..%d threads, got '%s'\n", prog, MAX_THREADS, optarg);
                return EXIT_USAGE;
            }
            o->threads = (unsigned)v;
            break;
        case 'z':
            o->zero_copy = true;
            break;
        case 'T':
            if (!parse_number(optarg, INT_MAX, &v)) {
                fprintf(stderr, "%s: -T: not a number of milliseconds: '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            o->timeout_ms = (int)v;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- output ------------------------------------------------------------ */

/* Prints the text of a record of LEN bytes at REC as one line, under the lock. */
static void print_record(struct sink *s, const void *rec, size_t len)
{
    size_t n = record_text_len(rec, len);

    pthread_mutex_lock(&s->print_lock);
    write_record_line(stdout, rec, n);
    fflush(stdout);
    pthread_mutex_unlock(&s->print_lock);
}

/* ---- worker threads (-t) ----------------------------------------------- */

static void *worker_main(void *arg)
{
    struct sink *s = arg;

    for (;;) {
        void *item = NULL;
        shmio_status st = shmio_tqueue_pop(s->handoff, &item, -1);

        if (st == SHMIO_ERR_CLOSED)
            break;              /* closed and drained */
        if (st == SHMIO_ERR_INTERRUPTED)
            continue;
        if (st != SHMIO_OK) {
            pthread_mutex_lock(&s->print_lock);
            report_failure(prog, "shmio_tqueue_pop", st);
            pthread_mutex_unlock(&s->print_lock);
            break;
        }
        /* The copy is zero-filled past the record, so its text ends inside it. */
        print_record(s, item, sizeof(struct data));
        free(item);
    }
    return NULL;
}

/* Stops the workers once they have printed everything handed to them. */
static void stop_workers(struct sink *s)
{
    shmio_status st = shmio_tqueue_close(s->handoff);

    if (st != SHMIO_OK)
        report_failure(prog, "shmio_tqueue_close", st);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    s->nworkers = 0;
    shmio_tqueue_free(s->handoff);
    s->handoff = NULL;
}

/* Creates the hand-off queue and THREADS workers (signals go to the reader only). */
static int start_workers(struct sink *s, unsigned threads)
{
    sigset_t block, old;
    shmio_status st = shmio_tqueue_new(HANDOFF_CAPACITY, &s->handoff);
    int err = 0;

    if (st != SHMIO_OK) {
        report_failure(prog, "shmio_tqueue_new", st);
        return -1;
    }
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (unsigned i = 0; i < threads && err == 0; i++) {
        err = pthread_create(&s->workers[i], NULL, worker_main, s);
        if (err == 0)
            s->nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        fprintf(stderr, "%s: pthread_create: %s\n", prog, strerror(err));
        stop_workers(s);
        return -1;
    }
    return 0;
}

/* Copies a record of LEN bytes into a new zero-filled struct data. */
static struct data *copy_record(const void *rec, size_t len)
{
    struct data *d = calloc(1, sizeof *d);

    if (d != NULL)
        memcpy(d, rec, len < sizeof *d ? len : sizeof *d);
    return d;
}

/* Hands a copied record to the workers; the workers own it on success. */
static shmio_status hand_off(struct sink *s, struct data *d)
{
    shmio_status st;

    do
        st = shmio_tqueue_push(s->handoff, d, -1);
    while (st == SHMIO_ERR_INTERRUPTED && !g_stop_requested);
    if (st != SHMIO_OK) {
        free(d);
        if (st != SHMIO_ERR_INTERRUPTED)
            report_failure(prog, "shmio_tqueue_push", st);
    }
    return st;
}

/* Prints, or copies and hands off, a record we hold a stable copy of. */
static shmio_status deliver(struct sink *s, const void *rec, size_t len)
{
    struct data *d;

    if (s->handoff == NULL) {
        print_record(s, rec, len);
        return SHMIO_OK;
    }
    d = copy_record(rec, len);
    if (d == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return SHMIO_ERR_IO;
    }
    return hand_off(s, d);
}

/* ---- reading ------------------------------------------------------------- */

/* What one step of the read loop did. */
enum step {
    STEP_RECORD,    /* a record was printed or handed off */
    STEP_NONE,      /* nothing to count (signal, record lost in place): go on */
    STEP_END,       /* stop reading; *rc holds the exit status */
};

/* Ends reading on status ST of CALL: the message and the exit status. */
static enum step end_with(shmio_status st, const char *call, int timeout_ms, int *rc)
{
    switch (st) {
    case SHMIO_ERR_CLOSED:
        fprintf(stderr, "%s: the producer closed the queue\n", prog);
        *rc = EXIT_OK;
        break;
    case SHMIO_ERR_PRODUCER_DEAD:
        fprintf(stderr, "%s: producer died\n", prog);
        *rc = EXIT_PRODUCER_DIED;
        break;
    case SHMIO_ERR_TIMEOUT:
    case SHMIO_ERR_WOULD_BLOCK:
        fprintf(stderr, "%s: no record within %d ms, giving up\n", prog, timeout_ms);
        *rc = EXIT_IDLE_TIMEOUT;
        break;
    default:
        report_failure(prog, call, st);
        *rc = EXIT_FAILURE_OTHER;
        break;
    }
    return STEP_END;
}

/* The step for the status of a hand-off or print. */
static enum step after_delivery(shmio_status st, int *rc)
{
    if (st == SHMIO_OK)
        return STEP_RECORD;
    if (st == SHMIO_ERR_INTERRUPTED)
        return STEP_NONE;       /* stop requested while the workers were full */
    *rc = EXIT_FAILURE_OTHER;   /* already reported */
    return STEP_END;
}

/*
 * Takes the next record in place (shmio_consumer_read + release).  Without
 * -t the text is printed straight from the slot; with -t it is copied out
 * first.  In overwrite mode the producer may rewrite the slot meanwhile:
 * release then says SHMIO_ERR_OVERRUN, the record counts as lost, and we
 * report it and go on.
 */
static enum step take_in_place(shmio_consumer *c, struct sink *s, int timeout_ms, int *rc)
{
    const void *rec;
    size_t len;
    uint64_t seq;
    struct data *copy = NULL;
    shmio_status st = shmio_consumer_read(c, timeout_ms, &rec, &len, &seq);

    if (st == SHMIO_ERR_INTERRUPTED)
        return STEP_NONE;
    if (st != SHMIO_OK)
        return end_with(st, "shmio_consumer_read", timeout_ms, rc);
    if (s->handoff != NULL)
        copy = copy_record(rec, len);
    else
        print_record(s, rec, len);

    st = shmio_consumer_release(c);
    if (st == SHMIO_ERR_OVERRUN) {
        fprintf(stderr, "%s: record %" PRIu64 " was overwritten while read in place%s; "
                        "counted as lost\n", prog, seq,
                s->handoff != NULL ? " (dropped)" : " (its line may be garbled)");
        free(copy);
        return STEP_NONE;
    }
    if (st != SHMIO_OK) {
        free(copy);
        return end_with(st, "shmio_consumer_release", timeout_ms, rc);
    }
    if (s->handoff == NULL)
        return STEP_RECORD;
    if (copy == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        *rc = EXIT_FAILURE_OTHER;
        return STEP_END;
    }
    return after_delivery(hand_off(s, copy), rc);
}

/* Takes the next record by copy (shmio_consumer_recv). */
static enum step take_copy(shmio_consumer *c, struct sink *s, int timeout_ms, int *rc)
{
    struct data rec;
    size_t len;
    uint64_t seq;
    shmio_status st = shmio_consumer_recv(c, &rec, sizeof rec, timeout_ms, &len, &seq);

    if (st == SHMIO_ERR_BUFFER_TOO_SMALL) {
        /* Not one of our records, and recv consumed nothing: use its first bytes, in place. */
        return take_in_place(c, s, timeout_ms, rc);
    }
    if (st == SHMIO_ERR_INTERRUPTED)
        return STEP_NONE;
    if (st != SHMIO_OK)
        return end_with(st, "shmio_consumer_recv", timeout_ms, rc);
    return after_delivery(deliver(s, &rec, len), rc);
}

/* Says on stderr how many records were lost since the last call. */
static void report_lost(shmio_consumer *c, uint64_t *seen)
{
    uint64_t lost;
    shmio_status st = shmio_consumer_lost(c, &lost);

    if (st != SHMIO_OK) {
        report_failure(prog, "shmio_consumer_lost", st);
        return;
    }
    if (lost > *seen) {
        fprintf(stderr, "lost %" PRIu64 " records\n", lost - *seen);
        *seen = lost;
    }
}

/* Reads until COUNT records, the end of the queue, a signal or an error. */
static int read_loop(shmio_consumer *c, struct sink *s, const struct options *o)
{
    unsigned long long got = 0;
    uint64_t lost_seen = 0;
    int rc = EXIT_OK;

    while (!g_stop_requested && (!o->has_count || got < o->count)) {
        enum step step = o->zero_copy ? take_in_place(c, s, o->timeout_ms, &rc)
                                      : take_copy(c, s, o->timeout_ms, &rc);
        report_lost(c, &lost_seen);
        if (step == STEP_END)
            return rc;
        if (step == STEP_RECORD)
            got++;
    }
    return EXIT_OK;
}

static int open_consumer(const struct options *o, shmio_consumer **out)
{
    shmio_status st = shmio_consumer_open(o->queue, o->start, 0, out);

    if (st == SHMIO_OK)
        return EXIT_OK;
    report_failure(prog, "cannot open the queue", st);
    if (st == SHMIO_ERR_NOT_FOUND)
        fprintf(stderr, "%s: is the producer running? (start it first: it creates '%s')\n",
                prog, o->queue);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct options o;
    struct sink s = { .handoff = NULL, .nworkers = 0 };
    shmio_consumer *c = NULL;
    int rc = parse_options(argc, argv, &o);

    if (rc >= 0)
        return rc;
    if (install_stop_handlers() != 0) {
        perror("consumer: sigaction");
        return EXIT_FAILURE_OTHER;
    }
    rc = open_consumer(&o, &c);
    if (rc != EXIT_OK)
        return rc;

    pthread_mutex_init(&s.print_lock, NULL);
    if (o.threads > 0 && start_workers(&s, o.threads) != 0) {
        rc = EXIT_FAILURE_OTHER;
    } else {
        rc = read_loop(c, &s, &o);
        if (s.handoff != NULL)
            stop_workers(&s);   /* every record handed off is printed before this returns */
    }
    shmio_consumer_close(c);
    pthread_mutex_destroy(&s.print_lock);
    return rc;
}
