/*
 * memsync.c - the "memory kept in sync through a mapped file" note's test, on shmio.
 *
 * Test1 maps a 4 MiB shmio region (by default /dev/shm/shmio_memsync; -p for any path: a RAM
 * disk, ext4, NFS) and, per pass, reads the whole region in 1 KiB memcpy()s into a buffer, then
 * writes it back in 1 KiB memcpy()s.  Test2 does the same on malloc()ed (page-aligned) memory.  It prints the
 * note's four figures, seconds per pass, and the Sync/Priv ratios.
 *
 *   -p PATH   region name or path (created if missing, unlinked at the end if created here)
 *   -S        open the region file with O_SYNC, as the note did (it does not make stores
 *             through the mapping synchronous; see shmio_region_flush)
 *   -c        use the consistent calls (shmio_region_read / shmio_region_write) instead of
 *             raw memcpy on the mapping
 *   -n PASSES passes per test (default 2048, as the note)
 *
 * Differences from the note: both buffers are touched once before timing (the note timed the
 * first page faults of malloc()ed memory), the passes of the two tests alternate (in
 * alternating order) instead of running one test after the other, so that the noise of a
 * busy machine hits both alike, times come from CLOCK_MONOTONIC, and the copied data is
 * consumed so the compiler cannot drop the reads.
 */
#include "common.h"

#include <inttypes.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define REGION_SIZE (4u * 1024u * 1024u)
#define CHUNK 1024u

static const char *prog = "memsync";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-p PATH] [-S] [-c] [-n PASSES]\n"
            "  -p PATH    region name or path (default shmio_memsync, in /dev/shm)\n"
            "  -S         open the region file with O_SYNC\n"
            "  -c         consistent shmio_region_read/write instead of raw memcpy\n"
            "  -n PASSES  passes per test (default 2048)\n",
            prog);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Makes the compiler believe the buffer's contents are used. */
static inline void sink(const void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

struct result {
    double read_s;  /* seconds per pass */
    double write_s;
};

/* One pass of the note's loop on plain memory (the mapping, or malloc()ed memory), added to
 * the running totals. */
static void raw_pass(unsigned char *mem, struct result *tot)
{
    unsigned char buf[CHUNK];

    {
        double t0 = now_s();
        for (size_t i = 0; i < REGION_SIZE; i += CHUNK) {
            memcpy(buf, mem + i, CHUNK);
            sink(buf);
        }
        double t1 = now_s();
        memset(buf, rand(), CHUNK);
        double t2 = now_s();
        for (size_t i = 0; i < REGION_SIZE; i += CHUNK) {
            sink(buf);
            memcpy(mem + i, buf, CHUNK);
        }
        sink(mem);
        double t3 = now_s();
        tot->read_s += t1 - t0;
        tot->write_s += t3 - t2;
    }
}

/* The same with the consistent calls. */
static int consistent_pass(shmio_region *r, struct result *tot)
{
    unsigned char buf[CHUNK];
    shmio_status st;

    {
        double t0 = now_s();
        for (size_t i = 0; i < REGION_SIZE; i += CHUNK) {
            st = shmio_region_read(r, i, buf, CHUNK, NULL);
            if (st != SHMIO_OK) {
                report_failure(prog, "shmio_region_read", st);
                return -1;
            }
            sink(buf);
        }
        double t1 = now_s();
        memset(buf, rand(), CHUNK);
        double t2 = now_s();
        for (size_t i = 0; i < REGION_SIZE; i += CHUNK) {
            st = shmio_region_write(r, i, buf, CHUNK, NULL);
            if (st != SHMIO_OK) {
                report_failure(prog, "shmio_region_write", st);
                return -1;
            }
        }
        double t3 = now_s();
        tot->read_s += t1 - t0;
        tot->write_s += t3 - t2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = "shmio_memsync";
    bool o_sync = false, consistent = false;
    unsigned passes = 2048;
    int opt;

    while ((opt = getopt(argc, argv, "p:Scn:h")) != -1) {
        switch (opt) {
        case 'p': path = optarg; break;
        case 'S': o_sync = true; break;
        case 'c': consistent = true; break;
        case 'n': {
            char *end;
            unsigned long n = strtoul(optarg, &end, 10);
            if (*end != '\0' || n == 0 || n > 1000000) {
                fprintf(stderr, "%s: -n wants 1..1000000\n", prog);
                return EXIT_USAGE;
            }
            passes = (unsigned)n;
            break;
        }
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    srand((unsigned)time(NULL));

    shmio_region_options o;
    shmio_region_options_init(&o);
    if (o_sync)
        o.flags |= SHMIO_REGION_O_SYNC;
    shmio_region *r = NULL;
    bool created = false;
    shmio_status st = shmio_region_open(path, &o, &r);
    if (st == SHMIO_ERR_NOT_FOUND) {
        st = shmio_region_create(path, REGION_SIZE, &o, &r);
        created = st == SHMIO_OK;
    }
    if (st != SHMIO_OK) {
        report_failure(prog, path, st);
        return EXIT_USAGE;
    }
    void *data;
    size_t len;
    shmio_region_data(r, &data, &len);
    if (len < REGION_SIZE) {
        fprintf(stderr, "%s: %s holds %zu bytes, need %u\n", prog, path, len, REGION_SIZE);
        shmio_region_close(r);
        return EXIT_USAGE;
    }

    /* Page aligned like the mapping: with malloc()'s 16-byte offset the two tests would differ
     * in cache-line splits and 4 KiB store/load aliasing against the stack buffer, not in
     * anything the region does. */
    unsigned char *mem = aligned_alloc(4096, REGION_SIZE);
    if (mem == NULL) {
        fprintf(stderr, "%s: Allocation Error\n", prog);
        shmio_region_close(r);
        return EXIT_FAILURE_OTHER;
    }

    /* Touch every page of both once, untimed. */
    memset(data, 0, REGION_SIZE);
    shmio_region_touch(r, NULL);
    memset(mem, 0, REGION_SIZE);

    /* Passes alternate between the region and malloc()ed memory, in alternating order, so
     * that the noise of a busy machine hits both alike. */
    struct result sync_r = {0, 0}, priv = {0, 0};
    for (unsigned j = 0; j < passes; j++) {
        if (j % 2 == 1)
            raw_pass(mem, &priv);
        if (consistent) {
            if (consistent_pass(r, &sync_r) != 0) {
                free(mem);
                shmio_region_close(r);
                return EXIT_FAILURE_OTHER;
            }
        } else {
            raw_pass(data, &sync_r);
        }
        if (j % 2 == 0)
            raw_pass(mem, &priv);
    }
    sync_r.read_s /= passes;
    sync_r.write_s /= passes;
    priv.read_s /= passes;
    priv.write_s /= passes;

    printf("\nTest1 (region %s, %s%s)\nMemory Mapping Address: %p\n\n", path,
           consistent ? "consistent shmio_region_read/write" : "raw memcpy",
           o_sync ? ", O_SYNC" : "", data);
    printf("Count : %u\n\n", passes);
    printf("Sync. Read\t\t %.6f Sec.\n", sync_r.read_s);
    printf("Sync. Write\t\t %.6f Sec.\n", sync_r.write_s);
    printf("\n\nTest2 (malloc)\nMemory Address: %p\n\n", (void *)mem);
    printf("Count : %u\n\n", passes);
    printf("Priv. Read\t\t %.6f Sec.\n", priv.read_s);
    printf("Priv. Write\t\t %.6f Sec.\n", priv.write_s);
    free(mem);
    shmio_region_close(r);
    if (created)
        shmio_region_unlink(path);

    printf("\nSync/Priv Read\t\t %.3f\n", sync_r.read_s / priv.read_s);
    printf("Sync/Priv Write\t\t %.3f\n", sync_r.write_s / priv.write_s);
    return EXIT_OK;
}
