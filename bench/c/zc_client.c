/*
 * zc_client - the load of the zero-copy study (bench/c/zc_study.sh): C connections to
 * 127.0.0.1:PORT at once, each making R keep-alive GET requests one after another and reading
 * every reply to its end (the bytes are dropped). One process, one epoll loop.
 *
 *   zc_client PORT CONNECTIONS REQUESTS [TIMEOUT_S]
 *
 * Prints "clients C requests N bytes B seconds S errors E" (S: first connect to last byte).
 * Gives up after TIMEOUT_S seconds (default 60), counting unfinished connections as errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct cl {
    int fd, left;           /* requests still to make (the current one included) */
    size_t hlen;            /* bytes of the header read so far */
    long long body_left;    /* -1: reading the header */
    char hdr[1024];
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/* Feeds n bytes at p to c; returns 1 when a reply ended, -1 on a bad reply. */
static int feed(struct cl *c, char *p, size_t n, unsigned long long *bytes, size_t *used)
{
    size_t i = 0;
    while (i < n) {
        if (c->body_left < 0) {
            if (c->hlen == sizeof c->hdr)
                return -1;
            c->hdr[c->hlen++] = p[i++];
            if (c->hlen >= 4 && memcmp(c->hdr + c->hlen - 4, "\r\n\r\n", 4) == 0) {
                c->hdr[c->hlen] = '\0';
                char *cl = strcasestr(c->hdr, "\r\nContent-Length:");
                if (!cl || strncmp(c->hdr, "HTTP/1.1 200", 12) != 0)
                    return -1;
                c->body_left = atoll(cl + 17);
                c->hlen = 0;
            }
        } else {
            size_t take = n - i < (size_t)c->body_left ? n - i : (size_t)c->body_left;
            c->body_left -= (long long)take;
            *bytes += take;
            i += take;
        }
        if (c->body_left == 0) {
            c->body_left = -1;
            *used = i;
            return 1;
        }
    }
    *used = i;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS REQUESTS [TIMEOUT_S]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), nc = atoi(argv[2]), nr = atoi(argv[3]);
    double timeout = argc > 4 ? atof(argv[4]) : 60;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    struct cl *cs = calloc((size_t)nc, sizeof *cs);
    int ep = epoll_create1(0);
    static char buf[1 << 20];
    unsigned long long bytes = 0, done_req = 0;
    int live = 0, errors = 0;
    double t0 = now();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nc; i++) {
        struct cl *c = &cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
            perror("connect");
            return 1;
        }
        c->left = nr;
        c->body_left = -1;
        if (write(c->fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
            return 1;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
        live++;
    }
    struct epoll_event evs[256];
    while (live > 0) {
        double left = timeout - (now() - t0);
        if (left <= 0)
            break;
        int n = epoll_wait(ep, evs, 256, (int)(left * 1000) + 1);
        for (int i = 0; i < n; i++) {
            struct cl *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                errors++, live--;
                close(c->fd);
                continue;
            }
            size_t off = 0;
            while (off < (size_t)r) {
                size_t used;
                int f = feed(c, buf + off, (size_t)r - off, &bytes, &used);
                off += used;
                if (f < 0) {
                    errors++, live--;
                    close(c->fd);
                    break;
                }
                if (f == 1) {
                    done_req++;
                    if (--c->left == 0) {
                        live--;
                        close(c->fd);
                        break;
                    }
                    if (write(c->fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
                        errors++, live--;
                        close(c->fd);
                        break;
                    }
                }
            }
        }
    }
    double secs = now() - t0;
    printf("clients %d requests %llu bytes %llu seconds %.4f errors %d\n", nc, done_req, bytes,
           secs, errors + live);
    return 0;
}
