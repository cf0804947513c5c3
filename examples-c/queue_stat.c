/*
 * queue_stat.c - shows the state of a shmio queue without joining it.
 *
 * Prints the geometry, the producer (none / alive / dead, pid, take-overs),
 * the head and oldest held sequence numbers, and one line per live consumer
 * (position, lag, lost, received), from shmio_queue_stats_get().
 *
 * usage: queue_stat [-q NAME] [-w MS]
 */
#include "common.h"

#include <inttypes.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "queue_stat";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-q NAME] [-w MS]\n"
            "  -q NAME   queue name (default \"%s\")\n"
            "  -w MS     print again every MS milliseconds until interrupted\n",
            prog, DEMO_QUEUE_NAME);
}

static const char *producer_state_name(uint32_t state)
{
    switch (state) {
    case SHMIO_PRODUCER_NONE: return "none (closed)";
    case SHMIO_PRODUCER_ALIVE: return "alive";
    case SHMIO_PRODUCER_DEAD: return "dead";
    default: return "unknown";
    }
}

static void print_stats(const char *queue, const shmio_queue_stats *qs,
                        const shmio_consumer_stats *cs, size_t n)
{
    printf("queue %s: %" PRIu32 " slots of %" PRIu32 " bytes, %s, %" PRIu32 "/%" PRIu32
           " consumers\n",
           queue, qs->slot_count, qs->slot_size,
           qs->policy == SHMIO_POLICY_BACKPRESSURE ? "back-pressure" : "overwrite",
           qs->live_consumers, qs->max_consumers);
    printf("  producer: %s", producer_state_name(qs->producer_state));
    if (qs->producer_state != SHMIO_PRODUCER_NONE)
        printf(", pid %" PRIu32, qs->producer_pid);
    printf(", generation %" PRIu32 "\n", qs->producer_generation);
    printf("  records: head %" PRIu64 ", oldest held %" PRIu64 "\n", qs->head, qs->oldest);
    if (n > 0)
        printf("  %5s %8s %12s %8s %10s %12s\n", "slot", "pid", "position", "lag", "lost", "received");
    for (size_t i = 0; i < n; i++)
        printf("  %5" PRIu32 " %8" PRIu32 " %12" PRIu64 " %8" PRIu64 " %10" PRIu64 " %12" PRIu64 "\n",
               cs[i].index, cs[i].pid, cs[i].position, cs[i].lag, cs[i].lost, cs[i].received);
    if (qs->live_consumers > n)
        printf("  (%zu of %" PRIu32 " consumers shown)\n", n, qs->live_consumers);
    fflush(stdout);
}

/* One snapshot. Returns an exit status. */
static int show(const char *queue)
{
    shmio_queue_stats qs;
    shmio_consumer_stats *cs;
    size_t n = 0;
    shmio_status st;

    /* Structs that may grow are filled by their _init first (it sets struct_size). */
    shmio_queue_stats_init(&qs);
    st = shmio_queue_stats_get(queue, &qs, NULL, 0, NULL);

    if (st != SHMIO_OK) {
        report_failure(prog, "cannot read the queue", st);
        return st == SHMIO_ERR_NOT_FOUND || st == SHMIO_ERR_PERMISSION_DENIED
                       || st == SHMIO_ERR_CORRUPT || st == SHMIO_ERR_VERSION_MISMATCH
                   ? EXIT_USAGE
                   : EXIT_FAILURE_OTHER;
    }
    /* Room for every consumer slot, so that none is left out. */
    cs = calloc(qs.max_consumers > 0 ? qs.max_consumers : 1, sizeof *cs);
    if (cs == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return EXIT_FAILURE_OTHER;
    }
    /* The first element's struct_size is the array's stride. */
    shmio_consumer_stats_init(&cs[0]);
    st = shmio_queue_stats_get(queue, &qs, cs, qs.max_consumers, &n);
    if (st != SHMIO_OK) {
        report_failure(prog, "shmio_queue_stats_get", st);
        free(cs);
        return EXIT_FAILURE_OTHER;
    }
    print_stats(queue, &qs, cs, n);
    free(cs);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    const char *queue = DEMO_QUEUE_NAME;
    unsigned long long watch_ms = 0;
    int ch, rc;

    while ((ch = getopt(argc, argv, "q:w:h")) != -1) {
        switch (ch) {
        case 'q': queue = optarg; break;
        case 'w':
            if (!parse_number(optarg, UINT32_MAX, &watch_ms) || watch_ms == 0) {
                fprintf(stderr, "%s: -w: not a number of milliseconds: '%s'\n", prog, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc || queue[0] == '\0') {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (install_stop_handlers() != 0) {
        perror("queue_stat: sigaction");
        return EXIT_FAILURE_OTHER;
    }
    rc = show(queue);
    while (rc == EXIT_OK && watch_ms > 0 && !g_stop_requested) {
        struct timespec t = { .tv_sec = (time_t)(watch_ms / 1000),
                              .tv_nsec = (long)(watch_ms % 1000) * 1000000L };
        if (nanosleep(&t, NULL) != 0 && g_stop_requested)
            break;
        putchar('\n');
        rc = show(queue);
    }
    return rc;
}
