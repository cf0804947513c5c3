/*
 * pipe_chain - libevent's test/bench.c in one C program: N socket pairs, A of
 * them active; each read event reads the byte(s) and writes one byte to the
 * next pair. The same loop on a hand-written epoll, on shmio (every backend,
 * through the C API), on libevent and on libev, interleaved, best of 5.
 * Prints ns per event. A benchmark program, not a test.
 *
 *   make -C bench/c && bench/c/pipe_chain
 */
#define _GNU_SOURCE
#include <shmio.h>

#include <ev.h>
static const int LIBEV_READ = EV_READ; /* before event2/event.h redefines EV_READ */
#include <event2/event.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

static int *rd, *wr;         /* per pair: read end, write end */
static int npairs;
static long done, target;

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void ring_open(int n)
{
    npairs = n;
    rd = calloc((size_t)n, sizeof *rd);
    wr = calloc((size_t)n, sizeof *wr);
    for (int i = 0; i < n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
            perror("socketpair");
            exit(1);
        }
        rd[i] = sv[0];
        wr[i] = sv[1];
    }
}

static void ring_close(void)
{
    for (int i = 0; i < npairs; i++) {
        close(rd[i]);
        close(wr[i]);
    }
    free(rd);
    free(wr);
}

static void ring_start(int active)
{
    for (int k = 0; k < active; k++)
        if (write(wr[(long)k * npairs / active], "e", 1) != 1)
            exit(1);
}

/* One event on pair i: take its bytes, pass each on. */
static void fire(int i)
{
    char buf[64];
    ssize_t r;
    while ((r = read(rd[i], buf, sizeof buf)) > 0) {
        for (ssize_t k = 0; k < r; k++)
            if (write(wr[(i + 1) % npairs], "e", 1) != 1)
                exit(1);
        done += r;
    }
}

static double run_raw(int n, int a)
{
    ring_open(n);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < n; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, rd[i], &e);
    }
    struct epoll_event evs[256];
    done = 0;
    ring_start(a);
    double t0 = now_ns();
    while (done < target) {
        int k = epoll_wait(ep, evs, 256, 5000);
        for (int j = 0; j < k; j++)
            fire((int)evs[j].data.u32);
    }
    double dt = (now_ns() - t0) / (double)done;
    close(ep);
    ring_close();
    return dt;
}

static double run_shmio(uint32_t backend, int n, int a)
{
    ring_open(n);
    shmio_poller *p;
    if (shmio_poller_new(backend, &p) != SHMIO_OK) {
        fprintf(stderr, "%s\n", shmio_last_error_message());
        exit(1);
    }
    for (int i = 0; i < n; i++)
        if (shmio_poller_register(p, rd[i], (uint64_t)i, SHMIO_INTEREST_READABLE) != SHMIO_OK) {
            fprintf(stderr, "%s\n", shmio_last_error_message());
            exit(1);
        }
    shmio_event evs[256];
    size_t k;
    shmio_poller_wait(p, evs, 256, 0, &k);
    done = 0;
    ring_start(a);
    double t0 = now_ns();
    while (done < target) {
        shmio_poller_wait(p, evs, 256, 5000, &k);
        for (size_t j = 0; j < k; j++)
            fire((int)evs[j].token);
    }
    double dt = (now_ns() - t0) / (double)done;
    shmio_poller_free(p);
    ring_close();
    return dt;
}

static void le_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fire((int)(intptr_t)arg);
}

static double run_libevent(int n, int a)
{
    ring_open(n);
    struct event_config *cfg = event_config_new();
    event_config_avoid_method(cfg, "select");
    event_config_avoid_method(cfg, "poll");
    struct event_base *base = event_base_new_with_config(cfg);
    struct event **evs = calloc((size_t)n, sizeof *evs);
    for (int i = 0; i < n; i++) {
        evs[i] = event_new(base, rd[i], EV_READ | EV_PERSIST, le_cb, (void *)(intptr_t)i);
        event_add(evs[i], NULL);
    }
    done = 0;
    ring_start(a);
    double t0 = now_ns();
    while (done < target)
        event_base_loop(base, EVLOOP_ONCE);
    double dt = (now_ns() - t0) / (double)done;
    for (int i = 0; i < n; i++)
        event_free(evs[i]);
    free(evs);
    event_base_free(base);
    event_config_free(cfg);
    ring_close();
    return dt;
}

static void lv_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    fire((int)(intptr_t)w->data);
}

static double run_libev(int n, int a)
{
    ring_open(n);
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    ev_io *ws = calloc((size_t)n, sizeof *ws);
    for (int i = 0; i < n; i++) {
        /* libev's EV_READ is 1; libevent's header redefines EV_READ as 0x02 (libev's EV_WRITE). */
        ev_io_init(&ws[i], lv_cb, rd[i], LIBEV_READ);
        ws[i].data = (void *)(intptr_t)i;
        ev_io_start(loop, &ws[i]);
    }
    done = 0;
    ring_start(a);
    double t0 = now_ns();
    while (done < target)
        ev_run(loop, EVRUN_ONCE);
    double dt = (now_ns() - t0) / (double)done;
    for (int i = 0; i < n; i++)
        ev_io_stop(loop, &ws[i]);
    free(ws);
    ev_loop_destroy(loop);
    ring_close();
    return dt;
}

int main(void)
{

    struct rlimit rl = {65536, 65536};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    static const char *names[] = {"raw-epoll", "libevent", "libev", "select", "poll", "epoll",
                                  "epoll-et", "rtsig", "rtsig-onefd"};
    enum { NCOL = 9 };
    printf("pipe-chain dispatch, C: ns per event, best of 5 (poll at N > 5000: 1), interleaved\n");
    printf("%6s %4s", "N", "A");
    for (int c = 0; c < NCOL; c++)
        printf(" %11s", names[c]);
    printf(" | %9s %9s\n", "epoll/raw", "epoll/ev");
    int ns[] = {100, 1000, 10000}, as[] = {1, 100};
    for (int ni = 0; ni < 3; ni++) {
        int n = ns[ni];
        /* With a hard RLIMIT_NOFILE of 20,000, "10,000" becomes 9,900 pairs (printed as is). */
        if ((rlim_t)(2 * n + 200) > rl.rlim_cur)
            n = (int)((rl.rlim_cur - 200) / 2);
        for (int ai = 0; ai < 2; ai++) {
            int a = as[ai];
            target = a == 1 ? 20000 : 100000;
            double best[NCOL];
            for (int c = 0; c < NCOL; c++)
                best[c] = 1e30;
            for (int rep = 0; rep < 5; rep++) {
                for (int c = 0; c < NCOL; c++) {
                    double v;
                    if (c == 0)
                        v = run_raw(n, a);
                    else if (c == 1)
                        v = run_libevent(n, a);
                    else if (c == 2)
                        v = run_libev(n, a);
                    else if (c == 3 && 2 * n + 16 > 1024)
                        continue;
                    else if ((c == 3 || c == 4) && n > 5000 && rep > 0)
                        continue; /* O(N) per event: one sample is plenty */
                    else
                        v = run_shmio((uint32_t)(c - 2), n, a);
                    if (v < best[c])
                        best[c] = v;
                }
            }
            printf("%6d %4d", n, a);
            for (int c = 0; c < NCOL; c++) {
                if (best[c] >= 1e30)
                    printf(" %11s", "n/a");
                else
                    printf(" %11.0f", best[c]);
            }
            printf(" | %9.2f %9.2f\n", best[5] / best[0], best[5] / best[2]);
            fflush(stdout);
        }
    }
    return 0;
}
