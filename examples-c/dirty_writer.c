/*
 * dirty_writer.c - the dirty-page note's program, with the numbers it made you look up.
 *
 * Writes R MiB per second to a file with write(2) (default 1 MiB/s to ./test.dump, as the
 * original) and prints, each second: the file's size, its dirty and writeback pages
 * (cachestat), the system's Dirty and Writeback (/proc/meminfo), and the thresholds the
 * vm.dirty_* knobs imply (ours and the kernel's own). Watch dirty pages pile up and drain as
 * the flusher threads run.
 *
 *   -r MIB      MiB written per second (default 1)
 *   -d SECONDS  stop after SECONDS (default: run until interrupted)
 *   -f FILE     file to write (default ./test.dump)
 *   -s KNOB=V   set a vm.dirty_* knob (e.g. dirty_background_ratio=1) for the run; restored at
 *               the end; needs root; may be repeated
 *   -u          remove the file at the end
 */
#include "common.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define MEGABYTE (1024 * 1024)
#define MAX_SET 6

static const char *prog = "dirty_writer";

static const char *const knob_names[6] = {
    "dirty_background_ratio", "dirty_background_bytes",    "dirty_ratio",
    "dirty_bytes",            "dirty_writeback_centisecs", "dirty_expire_centisecs",
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-r MIB] [-d SECONDS] [-f FILE] [-s KNOB=VALUE]... [-u]\n"
            "  -r MIB       MiB written per second (default 1)\n"
            "  -d SECONDS   stop after SECONDS (default: until interrupted)\n"
            "  -f FILE      file to write (default ./test.dump)\n"
            "  -s KNOB=V    set vm.KNOB for the run, restored at the end (root)\n"
            "  -u           remove the file at the end\n",
            prog);
}

static void print_knobs(void)
{
    shmio_vm_knobs k;
    shmio_status st;

    shmio_vm_knobs_init(&k);
    st = shmio_vm_knobs_get(&k);
    if (st != SHMIO_OK) {
        report_failure(prog, "shmio_vm_knobs_get", st);
        return;
    }
    printf("vm.dirty_background_ratio = %" PRIu64 "\n", k.dirty_background_ratio);
    printf("vm.dirty_background_bytes = %" PRIu64 "\n", k.dirty_background_bytes);
    printf("vm.dirty_ratio = %" PRIu64 "\n", k.dirty_ratio);
    printf("vm.dirty_bytes = %" PRIu64 "\n", k.dirty_bytes);
    printf("vm.dirty_writeback_centisecs = %" PRIu64 "\n", k.dirty_writeback_centisecs);
    printf("vm.dirty_expire_centisecs = %" PRIu64 "\n", k.dirty_expire_centisecs);
}

static void print_second(unsigned sec, const char *file, uint64_t size)
{
    shmio_page_cache c;
    shmio_vm_system s;
    shmio_vm_thresholds t;
    char cbuf[96];

    shmio_page_cache_init(&c);
    shmio_vm_system_init(&s);
    shmio_vm_thresholds_init(&t);
    if (shmio_vm_file_cache(file, &c) == SHMIO_OK)
        snprintf(cbuf, sizeof cbuf, "file dirty %" PRIu64 " writeback %" PRIu64 " cached %" PRIu64
                 " pages", c.dirty, c.writeback, c.cached);
    else
        snprintf(cbuf, sizeof cbuf, "file dirty n/a (%s)", shmio_last_error_message());
    if (shmio_vm_system_get(&s) != SHMIO_OK)
        memset(&s, 0, sizeof s);
    if (shmio_vm_thresholds_get(&t) != SHMIO_OK)
        memset(&t, 0, sizeof t);
    printf("t=%us size %" PRIu64 " KB | %s | system Dirty %" PRIu64 " KB Writeback %" PRIu64
           " KB | thresholds background %" PRIu64 " KB dirty %" PRIu64 " KB (kernel %" PRIu64
           " / %" PRIu64 " KB)\n",
           sec, size / 1024, cbuf, s.dirty_bytes / 1024, s.writeback_bytes / 1024,
           t.background_bytes / 1024, t.dirty_bytes / 1024, t.kernel_background_bytes / 1024,
           t.kernel_dirty_bytes / 1024);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *file = "./test.dump";
    unsigned long rate = 1, duration = 0;
    bool unlink_at_end = false;
    uint32_t set_knob[MAX_SET];
    uint64_t set_value[MAX_SET], old_value[MAX_SET];
    int nset = 0, opt;

    while ((opt = getopt(argc, argv, "r:d:f:s:uh")) != -1) {
        char *end;
        switch (opt) {
        case 'r':
            rate = strtoul(optarg, &end, 10);
            if (*end != '\0' || rate == 0 || rate > 4096) {
                fprintf(stderr, "%s: -r wants 1..4096 MiB/s\n", prog);
                return EXIT_USAGE;
            }
            break;
        case 'd':
            duration = strtoul(optarg, &end, 10);
            if (*end != '\0') {
                fprintf(stderr, "%s: -d wants seconds\n", prog);
                return EXIT_USAGE;
            }
            break;
        case 'f': file = optarg; break;
        case 'u': unlink_at_end = true; break;
        case 's': {
            const char *eq = strchr(optarg, '=');
            int k = -1;
            for (int i = 0; eq != NULL && i < 6; i++)
                if (strlen(knob_names[i]) == (size_t)(eq - optarg) &&
                    strncmp(optarg, knob_names[i], (size_t)(eq - optarg)) == 0)
                    k = i;
            if (k < 0 || nset == MAX_SET) {
                fprintf(stderr, "%s: -s wants KNOB=VALUE with a vm.dirty_* knob name\n", prog);
                return EXIT_USAGE;
            }
            set_knob[nset] = (uint32_t)k;
            set_value[nset] = strtoull(eq + 1, NULL, 10);
            nset++;
            break;
        }
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (install_stop_handlers() != 0) {
        perror("sigaction");
        return EXIT_FAILURE_OTHER;
    }

    int applied = 0;
    for (; applied < nset; applied++) {
        shmio_status st = shmio_vm_knob_set(set_knob[applied], set_value[applied],
                                            &old_value[applied]);
        if (st != SHMIO_OK) {
            report_failure(prog, knob_names[set_knob[applied]], st);
            break;
        }
        printf("set vm.%s = %" PRIu64 " (was %" PRIu64 ")\n", knob_names[set_knob[applied]],
               set_value[applied], old_value[applied]);
    }
    int status = EXIT_OK;
    if (applied < nset) {
        status = EXIT_USAGE;
        goto restore;
    }
    print_knobs();

    int fd = open(file, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "%s: open %s: %s\n", prog, file, strerror(errno));
        status = EXIT_USAGE;
        goto restore;
    }
    char *message = calloc(1, MEGABYTE);
    if (message == NULL) {
        close(fd);
        status = EXIT_FAILURE_OTHER;
        goto restore;
    }
    uint64_t size = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (unsigned sec = 1; !g_stop_requested && (duration == 0 || sec <= duration); sec++) {
        for (unsigned long m = 0; m < rate; m++) {
            ssize_t w = write(fd, message, MEGABYTE);
            if (w != MEGABYTE) {
                fprintf(stderr, "%s: write: %s\n", prog, w < 0 ? strerror(errno) : "short");
                status = EXIT_FAILURE_OTHER;
                goto done;
            }
            size += MEGABYTE;
        }
        print_second(sec, file, size);
        next.tv_sec += 1;
        while (!g_stop_requested &&
               clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
        }
    }
done:
    free(message);
    close(fd);
    if (unlink_at_end)
        unlink(file);
restore:
    while (applied-- > 0) {
        uint64_t ignored;
        if (shmio_vm_knob_set(set_knob[applied], old_value[applied], &ignored) == SHMIO_OK)
            printf("restored vm.%s = %" PRIu64 "\n", knob_names[set_knob[applied]],
                   old_value[applied]);
    }
    return status;
}
