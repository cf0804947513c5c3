/*
 * event_server - a small HTTP/1.1 server with keep-alive that serves one fixed
 * file for any request path, on any shmio poller backend: the event-dispatch
 * note's web-server project and the micro-server of the HP Labs study
 * "Scalability of Linux Event-Dispatch Mechanisms".
 *
 *   event_server [-b select|poll|epoll|epoll-et|rtsig|rtsig-onefd]
 *                [-p PORT] [-f FILE] [-n MAXCONN]
 *
 *   -b  poller backend (default epoll)
 *   -p  TCP port on 127.0.0.1 (default 8080; 0 picks a free one)
 *   -f  the file served for every path (default: a short built-in text)
 *   -n  most connections at once (default: RLIMIT_NOFILE raised to its hard limit)
 *
 * Prints "listening on 127.0.0.1:PORT backend NAME" once ready. On SIGINT or
 * SIGTERM it prints its counters and the poller's stats and exits 0.
 *
 * Every fd is non-blocking, and every read and write runs until EAGAIN, so
 * the loop is correct for edge-triggered backends too. Requests may be
 * pipelined; "Connection: close" (or HTTP/1.0 without keep-alive) closes the
 * connection after the reply.
 */
#include <shmio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LISTEN_TOKEN UINT64_MAX
#define STOP_TOKEN (UINT64_MAX - 1)
#define INBUF 8192

/* `in` comes last: a new connection clears everything before it (see on_listen). */
struct conn {
    int open;
    size_t in_len;           /* bytes in `in` */
    unsigned replies;        /* replies owed (pipelined requests) */
    size_t out_off;          /* bytes of the current reply already sent */
    int close_after;         /* close once the owed replies are sent */
    int want_write;          /* registered with WRITABLE */
    char in[INBUF];
};

/* SIGINT/SIGTERM set `stop` and write a byte to a pipe the poller watches: a signal that
 * arrives after the loop looked at `stop` but before the wait blocks still ends the wait. */
static volatile sig_atomic_t stop;
static int stop_pipe[2] = {-1, -1};
static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    stop = 1;
    if (write(stop_pipe[1], "", 1) < 0) {
        /* full or gone: a byte is already waiting, or we are leaving */
    }
    errno = saved;
}

static char *reply;          /* header + body */
static size_t reply_len;
static struct conn **conns;  /* by fd */
static size_t nconns_max;
static shmio_poller *poller;
static unsigned long long n_requests, n_accepted, n_closed, n_bad;

static void die(const char *what)
{
    fprintf(stderr, "event_server: %s: %s\n", what, shmio_last_error_message());
    exit(1);
}

static void load_reply(const char *path)
{
    char *body;
    size_t body_len;
    if (path) {
        FILE *f = fopen(path, "rb");
        struct stat st;
        if (!f || fstat(fileno(f), &st) != 0) {
            perror(path);
            exit(2);
        }
        body_len = (size_t)st.st_size;
        body = malloc(body_len + 1);
        if (!body || fread(body, 1, body_len, f) != body_len) {
            perror("read file");
            exit(2);
        }
        fclose(f);
    } else {
        body = strdup("Hello from shmio event_server.\n");
        body_len = strlen(body);
    }
    char head[256];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nServer: shmio-event_server\r\n"
                     "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                     body_len);
    reply_len = (size_t)h + body_len;
    reply = malloc(reply_len);
    memcpy(reply, head, (size_t)h);
    memcpy(reply + h, body, body_len);
    free(body);
}

static void close_conn(int fd)
{
    shmio_poller_deregister(poller, fd);
    close(fd);
    conns[fd]->open = 0;
    n_closed++;
}

static void set_write_interest(int fd, struct conn *c, int on)
{
    if (c->want_write == on)
        return;
    uint32_t i = SHMIO_INTEREST_READABLE | (on ? SHMIO_INTEREST_WRITABLE : 0);
    if (shmio_poller_modify(poller, fd, (uint64_t)fd, i) != SHMIO_OK)
        die("modify");
    c->want_write = on;
}

/* Parses complete requests out of c->in; returns -1 on a malformed one. */
static int parse(struct conn *c)
{
    for (;;) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) {
            if (c->in_len == INBUF)
                return -1;  /* header too large */
            return 0;
        }
        size_t len = (size_t)(end - c->in) + 4;
        char save = c->in[len - 1];
        c->in[len - 1] = '\0';
        if (strncmp(c->in, "GET ", 4) != 0 && strncmp(c->in, "HEAD ", 5) != 0)
            return -1;
        int http10 = strstr(c->in, "HTTP/1.0\r\n") != NULL;
        char *conn_hdr = strcasestr(c->in, "\r\nConnection:");
        int close_hdr = conn_hdr && strncasecmp(conn_hdr + 13, " close", 6) == 0;
        int keep_hdr = conn_hdr && strncasecmp(conn_hdr + 13, " keep-alive", 11) == 0;
        c->in[len - 1] = save;
        n_requests++;
        c->replies++;
        if (close_hdr || (http10 && !keep_hdr))
            c->close_after = 1;
        memmove(c->in, c->in + len, c->in_len - len);
        c->in_len -= len;
        if (c->close_after)
            return 0;  /* ignore anything after a closing request */
    }
}

/* Sends owed replies until done or EAGAIN; returns -1 if the connection is gone. */
static int flush_out(int fd, struct conn *c)
{
    while (c->replies > 0) {
        ssize_t w = send(fd, reply + c->out_off, reply_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_write_interest(fd, c, 1);
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)w;
        if (c->out_off == reply_len) {
            c->out_off = 0;
            c->replies--;
        }
    }
    set_write_interest(fd, c, 0);
    return c->close_after ? -1 : 0;
}

static void on_conn(int fd, uint32_t flags)
{
    struct conn *c = conns[fd];
    if (!c || !c->open)
        return;
    if (flags & (SHMIO_EVENT_READABLE | SHMIO_EVENT_HANGUP | SHMIO_EVENT_ERROR)) {
        for (;;) {
            if (c->in_len == INBUF)
                break;
            ssize_t r = recv(fd, c->in + c->in_len, INBUF - c->in_len, 0);
            if (r > 0) {
                c->in_len += (size_t)r;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && errno == EAGAIN)
                break;
            close_conn(fd);  /* EOF or error */
            return;
        }
        if (parse(c) < 0) {
            n_bad++;
            close_conn(fd);
            return;
        }
    }
    if (flush_out(fd, c) < 0)
        close_conn(fd);
}

static void on_listen(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != ECONNABORTED)
                perror("accept4");
            return;
        }
        if ((size_t)fd >= nconns_max) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!conns[fd] && !(conns[fd] = malloc(sizeof *conns[fd]))) {
            close(fd);
            continue;
        }
        memset(conns[fd], 0, offsetof(struct conn, in));
        conns[fd]->open = 1;
        if (shmio_poller_register(poller, fd, (uint64_t)fd, SHMIO_INTEREST_READABLE) != SHMIO_OK) {
            fprintf(stderr, "event_server: register: %s\n", shmio_last_error_message());
            close(fd);
            conns[fd]->open = 0;
            continue;
        }
        n_accepted++;
    }
}

int main(int argc, char **argv)
{
    const char *bname = "epoll", *file = NULL;
    int port = 8080;
    long maxconn = 0;
    int opt;
    while ((opt = getopt(argc, argv, "b:p:f:n:h")) != -1) {
        switch (opt) {
        case 'b': bname = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'f': file = optarg; break;
        case 'n': maxconn = atol(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-b select|poll|epoll|epoll-et|rtsig|rtsig-onefd] "
                            "[-p PORT] [-f FILE] [-n MAXCONN]\n", argv[0]);
            return 2;
        }
    }
    uint32_t backend;
    if (shmio_backend_from_name(bname, &backend) != SHMIO_OK)
        die("-b");
    load_reply(file);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    nconns_max = maxconn > 0 ? (size_t)maxconn + 16 : (size_t)rl.rlim_cur;
    if (nconns_max > (1u << 20))
        nconns_max = 1u << 20;
    conns = calloc(nconns_max, sizeof *conns);

    if (pipe2(stop_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        perror("pipe2");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;  /* no SA_RESTART: the wait returns SHMIO_ERR_INTERRUPTED */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0) {
        perror("bind/listen");
        return 2;
    }
    socklen_t alen = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &alen);

    if (shmio_poller_new(backend, &poller) != SHMIO_OK)
        die("poller");
    if (shmio_poller_register(poller, lfd, LISTEN_TOKEN, SHMIO_INTEREST_READABLE) != SHMIO_OK)
        die("register listener");
    if (shmio_poller_register(poller, stop_pipe[0], STOP_TOKEN, SHMIO_INTEREST_READABLE)
        != SHMIO_OK)
        die("register stop pipe");
    printf("listening on 127.0.0.1:%d backend %s\n", ntohs(a.sin_port),
           shmio_backend_name(shmio_poller_backend(poller)));
    fflush(stdout);

    shmio_event ev[256];
    while (!stop) {
        size_t n = 0;
        shmio_status s = shmio_poller_wait(poller, ev, 256, -1, &n);
        if (s == SHMIO_ERR_INTERRUPTED)
            continue;
        if (s != SHMIO_OK)
            die("wait");
        for (size_t i = 0; i < n; i++) {
            if (ev[i].token == STOP_TOKEN)
                continue;  /* `stop` is set: the loop ends */
            if (ev[i].token == LISTEN_TOKEN)
                on_listen(lfd);
            else
                on_conn((int)ev[i].token, ev[i].flags);
        }
    }

    shmio_poller_stats st;
    shmio_poller_stats_get(poller, &st);
    printf("backend %s: requests %llu, connections accepted %llu, closed %llu, bad %llu\n",
           bname, n_requests, n_accepted, n_closed, n_bad);
    printf("poller: waits %llu, events %llu, syscalls %llu, overflows %llu, signals %llu\n",
           (unsigned long long)st.waits, (unsigned long long)st.events,
           (unsigned long long)st.syscalls, (unsigned long long)st.overflows,
           (unsigned long long)st.signals);
    fflush(stdout);
    shmio_poller_free(poller);
    close(lfd);
    return 0;
}
