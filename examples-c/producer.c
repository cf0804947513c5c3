/*
 * producer.c - writes "write Data : N" records into a shmio broadcast queue.
 *
 * The shmio version of the classic SysV demo producer: instead of a shmget()
 * array of QUEUE_SIZE `struct data` guarded by fcntl() record locks, it
 * creates a shmio queue of 10 (rounded up to 16) slots of sizeof(struct data)
 * bytes and sends one record per interval.  Consumers are woken by shmio and
 * learn when the producer closes (CLOSED) or dies (PRODUCER_DEAD).
 *
 * usage: producer [-q NAME] [-n COUNT] [-i MS] [-s SLOTS] [-b] [-z] [-o] [-u] [-w N]
 */
#include "common.h"

#include <inttypes.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "producer";

struct options {
    const char *queue;
    unsigned long long count;   /* records to send, if !forever */
    bool forever;
    unsigned long long interval_ms;
    unsigned long long slots;
    bool slots_given;
    bool backpressure;
    bool zero_copy;
    bool open_existing;
    bool unlink_on_exit;
    unsigned long long wait_consumers;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-q NAME] [-n COUNT] [-i MS] [-s SLOTS] [-b] [-z] [-o] [-u] [-w N]\n"
            "  -q NAME   queue name (default \"%s\"; a bare name lives in /dev/shm\n"
            "            or $SHMIO_DIR, a name with '/' is a path)\n"
            "  -n COUNT  send COUNT records, then exit (default: forever)\n"
            "  -i MS     milliseconds between records (default 1000)\n"
            "  -s SLOTS  slots of the new queue (default %d, rounded up to a power of two)\n"
            "  -b        back-pressure: wait for the slowest consumer instead of overwriting\n"
            "  -z        zero copy: reserve a slot, write the record in place, commit\n"
            "  -o        take over an existing queue (whose producer closed or died)\n"
            "            instead of creating one\n"
            "  -u        unlink the queue on exit\n"
            "  -w N      wait until N consumers are attached before sending\n",
            prog, DEMO_QUEUE_NAME, DEMO_QUEUE_SIZE);
}

/* Returns -1 when the options are good, else the exit status. */
static int parse_options(int argc, char **argv, struct options *o)
{
    int ch;

    *o = (struct options){
        .queue = DEMO_QUEUE_NAME,
        .forever = true,
        .interval_ms = 1000,
        .slots = DEMO_QUEUE_SIZE,
    };
    while ((ch = getopt(argc, argv, "q:n:i:s:bzouw:h")) != -1) {
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
            o->forever = false;
            break;
        case 'i':
            if (!parse_number(optarg, UINT32_MAX, &o->interval_ms)) {
                fprintf(stderr, "%s: -i: not a number of milliseconds: '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            break;
        case 's':
            if (!parse_number(optarg, UINT32_MAX, &o->slots) || o->slots == 0) {
                fprintf(stderr, "%s: -s: not a slot count: '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            o->slots_given = true;
            break;
        case 'b': o->backpressure = true; break;
        case 'z': o->zero_copy = true; break;
        case 'o': o->open_existing = true; break;
        case 'u': o->unlink_on_exit = true; break;
        case 'w':
            if (!parse_number(optarg, UINT32_MAX, &o->wait_consumers)) {
                fprintf(stderr, "%s: -w: not a consumer count: '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (o->open_existing && (o->slots_given || o->backpressure))
        fprintf(stderr, "%s: -o: the queue keeps its own slot count and policy; "
                        "-s and -b are ignored\n", prog);
    return -1;
}

/* Where a bare queue name lives, for messages. */
static void print_queue_path_hint(const char *queue)
{
    const char *dir = getenv("SHMIO_DIR");

    if (strchr(queue, '/') != NULL)
        fprintf(stderr, "%s: remove it with: rm '%s'\n", prog, queue);
    else
        fprintf(stderr, "%s: remove it with: rm '%s/%s'\n", prog,
                dir != NULL && dir[0] != '\0' ? dir : "/dev/shm", queue);
}

static shmio_status create_queue(const struct options *o, shmio_producer **out)
{
    shmio_queue_options qo;
    shmio_status st = shmio_queue_options_init(&qo);

    if (st != SHMIO_OK) {
        report_failure(prog, "shmio_queue_options_init", st);
        return st;
    }
    qo.slots = (uint32_t)o->slots;
    qo.slot_size = (uint32_t)sizeof(struct data);
    qo.policy = o->backpressure ? SHMIO_POLICY_BACKPRESSURE : SHMIO_POLICY_OVERWRITE;
    st = shmio_producer_create(o->queue, &qo, out);
    if (st == SHMIO_ERR_ALREADY_EXISTS) {
        fprintf(stderr, "%s: queue '%s' already exists (left over from an earlier run?)\n"
                        "%s: take it over with -o, or unlink it first\n",
                prog, o->queue, prog);
        print_queue_path_hint(o->queue);
    } else if (st != SHMIO_OK) {
        report_failure(prog, "cannot create the queue", st);
    }
    return st;
}

static shmio_status open_queue(const struct options *o, shmio_producer **out)
{
    shmio_status st = shmio_producer_open(o->queue, out);

    if (st == SHMIO_ERR_PRODUCER_EXISTS)
        fprintf(stderr, "%s: queue '%s' already has a live producer\n", prog, o->queue);
    else if (st != SHMIO_OK)
        report_failure(prog, "cannot open the queue", st);
    return st;
}

/* Checks the queue can hold our records and says what it looks like. */
static int describe_queue(shmio_producer *p, const struct options *o)
{
    shmio_queue_info info;
    shmio_status st;

    shmio_queue_info_init(&info);
    st = shmio_producer_info(p, &info);

    if (st != SHMIO_OK) {
        report_failure(prog, "shmio_producer_info", st);
        return EXIT_FAILURE_OTHER;
    }
    fprintf(stderr, "%s: queue '%s': %" PRIu32 " slots of %" PRIu32 " bytes, %s, "
                    "up to %" PRIu32 " consumers (shmio %s)\n",
            prog, o->queue, info.slot_count, info.slot_size,
            info.policy == SHMIO_POLICY_BACKPRESSURE ? "back-pressure" : "overwrite",
            info.max_consumers, shmio_version());
    if (info.slot_size < sizeof(struct data)) {
        fprintf(stderr, "%s: its slots hold %" PRIu32 " bytes, a record needs %zu\n",
                prog, info.slot_size, sizeof(struct data));
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* Fills D with record N. */
static void format_record(struct data *d, unsigned long long n)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, DEMO_RECORD_FMT, n);
}

/* Copying send. Back-pressure mode may wait for ever (-1): a signal ends the wait. */
static shmio_status send_copy(shmio_producer *p, unsigned long long n, uint64_t *seq)
{
    struct data rec;

    format_record(&rec, n);
    return shmio_producer_send(p, &rec, sizeof rec, -1, seq);
}

/* Zero-copy send: the record is written straight into the reserved slot. */
static shmio_status send_in_place(shmio_producer *p, unsigned long long n, uint64_t *seq)
{
    void *buf;
    size_t cap;
    shmio_status st = shmio_producer_reserve(p, -1, &buf, &cap);

    if (st != SHMIO_OK)
        return st;
    if (cap < sizeof(struct data)) {
        shmio_status ast = shmio_producer_abort(p);
        if (ast != SHMIO_OK)
            report_failure(prog, "shmio_producer_abort", ast);
        fprintf(stderr, "%s: reserved slot holds %zu bytes, a record needs %zu\n",
                prog, cap, sizeof(struct data));
        return SHMIO_ERR_TOO_LARGE;
    }
    format_record((struct data *)buf, n);
    st = shmio_producer_commit(p, sizeof(struct data), seq);
    if (st != SHMIO_OK) {
        shmio_status ast = shmio_producer_abort(p);
        if (ast != SHMIO_OK)
            report_failure(prog, "shmio_producer_abort", ast);
    }
    return st;
}

/* Sleeps MS milliseconds, returning early when a stop signal arrives. */
static void sleep_ms(unsigned long long ms)
{
    struct timespec left = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };

    while (!g_stop_requested && nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

/* Waits until at least o->wait_consumers consumers are attached (or a stop signal). */
static int wait_for_consumers(const struct options *o)
{
    while (!g_stop_requested && o->wait_consumers > 0) {
        shmio_queue_stats stats;
        shmio_status st;

        shmio_queue_stats_init(&stats);
        st = shmio_queue_stats_get(o->queue, &stats, NULL, 0, NULL);

        if (st != SHMIO_OK) {
            report_failure(prog, "shmio_queue_stats_get", st);
            return EXIT_FAILURE_OTHER;
        }
        if (stats.live_consumers >= o->wait_consumers)
            break;
        sleep_ms(2);
    }
    return EXIT_OK;
}

static int run(shmio_producer *p, const struct options *o)
{
    unsigned long long n = 0;

    while (!g_stop_requested && (o->forever || n < o->count)) {
        uint64_t seq = 0;
        shmio_status st = o->zero_copy ? send_in_place(p, n, &seq) : send_copy(p, n, &seq);

        if (st == SHMIO_ERR_INTERRUPTED)
            continue;           /* a signal: the loop condition decides */
        if (st != SHMIO_OK) {
            if (st != SHMIO_ERR_TOO_LARGE || !o->zero_copy)
                report_failure(prog, o->zero_copy ? "zero-copy send" : "shmio_producer_send", st);
            return EXIT_FAILURE_OTHER;
        }
        printf("sent %" PRIu64 " " DEMO_RECORD_FMT "\n", seq, n);
        fflush(stdout);
        n++;
        if (o->forever || n < o->count)
            sleep_ms(o->interval_ms);
    }
    if (g_stop_requested)
        fprintf(stderr, "%s: stopping after %llu records\n", prog, n);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    struct options o;
    shmio_producer *p = NULL;
    shmio_status st;
    int rc = parse_options(argc, argv, &o);

    if (rc >= 0)
        return rc;
    if (install_stop_handlers() != 0) {
        perror("producer: sigaction");
        return EXIT_FAILURE_OTHER;
    }

    st = o.open_existing ? open_queue(&o, &p) : create_queue(&o, &p);
    if (st != SHMIO_OK)
        return EXIT_USAGE;

    rc = describe_queue(p, &o);
    if (rc == EXIT_OK)
        rc = wait_for_consumers(&o);
    if (rc == EXIT_OK)
        rc = run(p, &o);

    /* Closing tells the consumers: they drain the queue, then get SHMIO_ERR_CLOSED. */
    shmio_producer_close(p);
    if (o.unlink_on_exit) {
        st = shmio_queue_unlink(o.queue);
        if (st != SHMIO_OK) {
            report_failure(prog, "shmio_queue_unlink", st);
            if (rc == EXIT_OK)
                rc = EXIT_FAILURE_OTHER;
        }
    }
    return rc;
}
