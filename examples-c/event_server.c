/*
 * event_server - a small HTTP/1.1 server with keep-alive that serves one fixed
 * file for any request path, on any shmio poller backend: the event-dispatch
 * note's web-server project and the micro-server of the HP Labs study
 * "Scalability of Linux Event-Dispatch Mechanisms"; with -m and -w, the
 * zero-copy note's server (issue 14).
 *
 *   event_server [-b select|poll|epoll|epoll-et|rtsig|rtsig-onefd]
 *                [-p PORT] [-f FILE] [-n MAXCONN]
 *                [-m read|sendfile|splice|zerocopy] [-c CACHE] [-w WORKERS]
 *
 *   -b  poller backend (default epoll)
 *   -p  TCP port on 127.0.0.1 (default 8080; 0 picks a free one)
 *   -f  the file served for every path (default: a short built-in text)
 *   -n  most connections at once (default: RLIMIT_NOFILE raised to its hard limit)
 *   -m  how a reply's body is sent: read (the file read into a buffer of each process,
 *       sent with send: a copy per reply; the default), sendfile (shmio_zc_sendfile from
 *       the file), splice (shmio_zc_cache_send from the file's entry in a shared cache),
 *       zerocopy (MSG_ZEROCOPY sends from the buffer of "read"; completions are reaped
 *       as they come; the buffer is never rewritten, so sends wait for them only when
 *       the kernel refuses to pin more pages)
 *   -c  -m splice's cache (default: one made for this run); an existing one is opened
 *       and the file added if absent; a cache this process made is removed at exit
 *   -w  pre-forked workers (default 0: serve in this process). The parent makes the
 *       listening socket and the cache, forks WORKERS processes that each run their
 *       own poller (and open the cache themselves), and on SIGINT/SIGTERM stops them
 *       and prints the sums of their counters. With rtsig, whose signals for a socket
 *       go to one process (its owner, F_SETOWN), each worker but the first listens on
 *       its own socket bound to the same port (SO_REUSEPORT), so every worker accepts.
 *
 * Prints "listening on 127.0.0.1:PORT backend NAME" once ready (then "workers
 * PID..." with -w). Replies carry "X-Worker: PID". On SIGINT or SIGTERM it prints
 * its counters, the bytes sent, the CPU time used by the serving processes and
 * the poller's stats and exits 0.
 *
 * Every fd is non-blocking, and every read and write runs until EAGAIN, so
 * the loop is correct for edge-triggered backends too: a send that fills the
 * socket registers WRITABLE and goes on from where it stopped. Requests may be
 * pipelined; "Connection: close" (or HTTP/1.0 without keep-alive) closes the
 * connection after the reply.
 */
#include <shmio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LISTEN_TOKEN UINT64_MAX
#define STOP_TOKEN (UINT64_MAX - 1)
#define INBUF 8192

enum method { M_READ, M_SENDFILE, M_SPLICE, M_ZEROCOPY };
static const char *const method_names[] = {"read", "sendfile", "splice", "zerocopy"};

/* `in` comes last: a new connection clears everything before it (see on_listen). */
struct conn {
    int open;
    size_t in_len;           /* bytes in `in` */
    unsigned replies;        /* replies owed (pipelined requests) */
    size_t out_off;          /* bytes of the current reply already sent */
    int close_after;         /* close once the owed replies are sent */
    int want_write;          /* registered with WRITABLE */
    shmio_zerocopy *zc;      /* -m zerocopy: the socket's completions */
    uint64_t last_seq;       /* -m zerocopy: the number of its last send */
    char in[INBUF];
};

/* What a serving process counted; a worker hands its own to the parent through a pipe. */
struct counters {
    unsigned long long requests, accepted, closed, bad, bytes, copied, waits, events, syscalls,
        overflows, signals;
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

static enum method method = M_READ;
static const char *file;     /* -f, or NULL: the built-in text */
static const char *builtin = "Hello from shmio event_server.\n";
static size_t body_len;
static int file_fd = -1;     /* sendfile: the file (a memfd holding the built-in text) */
static char key[64] = "built-in"; /* splice: the file's cache key (device, inode, size, mtime) */
static const char *cache_name;
static shmio_zc_cache *cache; /* splice: this process's handle */
static shmio_zc_entry entry;  /* splice: the file's entry */
static shmio_splicer *splicer;
static int splicer_owner = -1; /* the connection whose send may have bytes in the pipe */
static char head[256];       /* this process's reply header */
static size_t head_len;
static char *reply;          /* read, zerocopy: header + body */
static size_t reply_len;     /* header + body, for every method */
static struct conn **conns;  /* by fd */
static size_t nconns_max;
static shmio_poller *poller;
static int accept_batch;     /* most connections taken per listener event (0: all) */
static struct counters k;

static void die(const char *what)
{
    fprintf(stderr, "event_server: %s: %s\n", what, shmio_last_error_message());
    exit(1);
}

static void fail(const char *what)
{
    perror(what);
    exit(2);
}

/* The body's length, and the file the sendfile method sends from (parent, before fork). */
static void open_body(void)
{
    if (file) {
        struct stat st;
        if ((file_fd = open(file, O_RDONLY | O_CLOEXEC)) < 0 || fstat(file_fd, &st) != 0)
            fail(file);
        body_len = (size_t)st.st_size;
        snprintf(key, sizeof key, "%llx:%llx:%zx:%llx", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino, body_len, (unsigned long long)st.st_mtime);
    } else {
        body_len = strlen(builtin);
        if ((file_fd = memfd_create("event_server", MFD_CLOEXEC)) < 0
            || write(file_fd, builtin, body_len) != (ssize_t)body_len)
            fail("memfd");
    }
}

/* splice: opens (or creates) the cache and finds (or adds) the file's entry; returns 1 if
 * this call created the cache. */
static int open_cache(int may_create)
{
    shmio_status s = shmio_zc_cache_open(cache_name, &cache);
    int created = 0;
    if (s == SHMIO_ERR_NOT_FOUND && may_create) {
        s = shmio_zc_cache_create(cache_name, body_len + 4096, 16, &cache);
        created = 1;
    }
    if (s != SHMIO_OK)
        die("cache");
    shmio_zc_entry_init(&entry);
    s = shmio_zc_cache_lookup(cache, key, &entry);
    if (s == SHMIO_ERR_NOT_FOUND && may_create)
        s = file ? shmio_zc_cache_add_file(cache, key, file, &entry)
                 : shmio_zc_cache_add(cache, key, builtin, body_len, &entry);
    if (s != SHMIO_OK)
        die("cache entry");
    return created;
}

/* Per serving process: the header (with its pid), the body buffer or the cache. */
static void load_reply(void)
{
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nServer: shmio-event_server\r\nX-Worker: %d\r\n"
                     "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                     (int)getpid(), body_len);
    head_len = (size_t)h;
    reply_len = head_len + body_len;
    if (method == M_SPLICE) {
        open_cache(0);
        if (shmio_zc_splicer_new(0, &splicer) != SHMIO_OK)
            die("splicer");
    }
    if (method != M_READ && method != M_ZEROCOPY)
        return;
    /* One copy of the file per process, read in: the buffer the copies come from. */
    if (!(reply = malloc(reply_len)))
        fail("malloc");
    memcpy(reply, head, head_len);
    for (size_t got = 0; got < body_len;) {
        ssize_t r = pread(file_fd, reply + head_len + got, body_len - got, (off_t)got);
        if (r <= 0)
            fail("read file");
        got += (size_t)r;
    }
}

static void close_conn(int fd)
{
    struct conn *c = conns[fd];
    shmio_poller_deregister(poller, fd);
    if (splicer_owner == fd) {
        shmio_zc_splicer_reset(splicer);  /* the pipe's bytes were this connection's */
        splicer_owner = -1;
    }
    shmio_zc_zerocopy_free(c->zc);  /* the buffer outlives every pending completion */
    c->zc = NULL;
    close(fd);
    c->open = 0;
    k.closed++;
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
        k.requests++;
        c->replies++;
        if (close_hdr || (http10 && !keep_hdr))
            c->close_after = 1;
        memmove(c->in, c->in + len, c->in_len - len);
        c->in_len -= len;
        if (c->close_after)
            return 0;  /* ignore anything after a closing request */
    }
}

/* Reaps c's MSG_ZEROCOPY completions, waiting up to `ms` for its last send. */
static void reap(int fd, struct conn *c, int ms)
{
    shmio_zc_reaped r;
    shmio_zc_reaped_init(&r);
    if (shmio_zc_zerocopy_outstanding(c->zc) == 0)
        return;
    if (shmio_zc_zerocopy_reap(c->zc, fd, ms ? c->last_seq : 0, ms, &r) == SHMIO_OK)
        k.copied += r.copied;
}

/* Sends part of the current reply from c->out_off: bytes sent, 0 if the socket is full (or
 * MSG_ZEROCOPY pinned too much), -1 if the connection is gone. */
static ssize_t send_some(int fd, struct conn *c)
{
    size_t off = c->out_off;
    if (method == M_READ || (method != M_ZEROCOPY && off < head_len)) {
        const char *buf = method == M_READ ? reply : head;
        size_t end = method == M_READ ? reply_len : head_len;
        int more = method != M_READ && body_len > 0 ? MSG_MORE : 0;
        for (;;) {
            ssize_t w = send(fd, buf + off, end - off, MSG_NOSIGNAL | more);
            if (w >= 0)
                return w;
            if (errno != EINTR)
                return errno == EAGAIN ? 0 : -1;
        }
    }
    shmio_zc_progress p;
    shmio_zc_progress_init(&p);
    shmio_status s = SHMIO_OK;
    switch (method) {
    case M_SENDFILE:
        s = shmio_zc_sendfile(fd, file_fd, off - head_len, reply_len - off, &p);
        break;
    case M_SPLICE:
        if (splicer_owner != fd)
            shmio_zc_splicer_reset(splicer);  /* another send's bytes: it starts them again */
        splicer_owner = fd;
        s = shmio_zc_cache_send(cache, &entry, off - head_len, fd, splicer, &p);
        break;
    default: {
        shmio_zc_sent z;
        for (int tries = 0; tries < 2; tries++) {
            shmio_zc_sent_init(&z);
            if ((s = shmio_zc_zerocopy_send(c->zc, fd, reply + off, reply_len - off, &z))
                != SHMIO_OK || z.len > 0)
                break;
            if (shmio_zc_zerocopy_outstanding(c->zc) == 0)
                break;  /* the socket is full: wait for WRITABLE */
            reap(fd, c, 1);  /* maybe too many pinned pages: let completions in, try again */
        }
        if (z.has_seq)
            c->last_seq = z.seq;
        p.sent = z.len;
        reap(fd, c, 0);
    }
    }
    if (s != SHMIO_OK)
        return -1;  /* reset, closed, or a file that shrank */
    return (ssize_t)p.sent;
}

/* Sends owed replies until done or EAGAIN; returns -1 if the connection is gone. */
static int flush_out(int fd, struct conn *c)
{
    while (c->replies > 0) {
        ssize_t w = send_some(fd, c);
        if (w < 0)
            return -1;
        if (w == 0) {
            set_write_interest(fd, c, 1);
            return 0;
        }
        c->out_off += (size_t)w;
        k.bytes += (unsigned long long)w;
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
    if (c->zc)
        reap(fd, c, 0);  /* completions make the socket report an error event */
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
            k.bad++;
            close_conn(fd);
            return;
        }
    }
    if (flush_out(fd, c) < 0)
        close_conn(fd);
}

static void on_listen(int lfd)
{
    for (int taken = 0; accept_batch == 0 || taken < accept_batch; taken++) {
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
        struct conn *c = conns[fd];
        memset(c, 0, offsetof(struct conn, in));
        c->open = 1;
        /* (A socket that refuses SO_ZEROCOPY gets plain sends: not an error.) */
        if ((method == M_ZEROCOPY && shmio_zc_zerocopy_enable(fd, &c->zc) != SHMIO_OK)
            || shmio_poller_register(poller, fd, (uint64_t)fd, SHMIO_INTEREST_READABLE)
                   != SHMIO_OK) {
            fprintf(stderr, "event_server: accept: %s\n", shmio_last_error_message());
            shmio_zc_zerocopy_free(c->zc);
            c->zc = NULL;
            close(fd);
            c->open = 0;
            continue;
        }
        k.accepted++;
    }
}

static void on_signals(void)
{
    if (pipe2(stop_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        fail("pipe2");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;  /* no SA_RESTART: the wait returns SHMIO_ERR_INTERRUPTED */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* One serving process's loop, until SIGINT/SIGTERM. */
static void serve(uint32_t backend, int lfd)
{
    load_reply();
    conns = calloc(nconns_max, sizeof *conns);
    if (!conns)
        fail("calloc");
    if (shmio_poller_new(backend, &poller) != SHMIO_OK)
        die("poller");
    if (shmio_poller_register(poller, lfd, LISTEN_TOKEN, SHMIO_INTEREST_READABLE) != SHMIO_OK)
        die("register listener");
    if (shmio_poller_register(poller, stop_pipe[0], STOP_TOKEN, SHMIO_INTEREST_READABLE)
        != SHMIO_OK)
        die("register stop pipe");
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
    shmio_poller_stats_init(&st);
    shmio_poller_stats_get(poller, &st);
    k.waits = st.waits, k.events = st.events, k.syscalls = st.syscalls;
    k.overflows = st.overflows, k.signals = st.signals;
    shmio_poller_free(poller);
    shmio_zc_splicer_free(splicer);
    shmio_zc_cache_close(cache);
}

/* With rtsig, worker `index`'s listening socket: the inherited one for the first, a socket
 * of its own bound to the same address for the others (SO_REUSEPORT, set on `lfd` before its
 * bind too): a socket's signals go to one owner, so workers sharing one would not all hear
 * of connections. Other backends share `lfd`. */
static int worker_listener(uint32_t backend, int lfd, int index)
{
    if (backend != SHMIO_BACKEND_RTSIG || index == 0)
        return lfd;
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || getsockname(lfd, (struct sockaddr *)&a, &alen) != 0
        || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
        || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0
        || bind(fd, (struct sockaddr *)&a, alen) != 0 || listen(fd, 4096) != 0)
        fail("worker listener");
    close(lfd);
    return fd;
}

/* -w: forks the workers, waits for SIGINT/SIGTERM, stops them and sums their counters. */
static void run_workers(uint32_t backend, int lfd, int nworkers)
{
    int cp[2];
    pid_t *pids = calloc((size_t)nworkers, sizeof *pids);
    if (!pids || pipe2(cp, O_CLOEXEC) != 0)
        fail("workers");
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t parent = getpid();
    for (int i = 0; i < nworkers; i++) {
        if ((pids[i] = fork()) < 0)
            fail("fork");
        if (pids[i] == 0) {
            /* A parent killed outright (SIGKILL) cannot stop its workers: they stop with it. */
            if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
                _exit(1);
            free(pids);  /* the parent's list: not the worker's */
            close(cp[0]);
            close(stop_pipe[0]);
            close(stop_pipe[1]);
            on_signals();  /* this worker's own stop pipe */
            sigprocmask(SIG_SETMASK, &old, NULL);
            serve(backend, worker_listener(backend, lfd, i));
            if (write(cp[1], &k, sizeof k) != (ssize_t)sizeof k)
                _exit(1);
            fflush(stdout);
            _exit(0);
        }
    }
    close(cp[1]);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("workers");
    for (int i = 0; i < nworkers; i++)
        printf(" %d", (int)pids[i]);
    printf("\n");
    fflush(stdout);
    struct pollfd pf = {.fd = stop_pipe[0], .events = POLLIN};
    while (!stop)
        poll(&pf, 1, -1);
    for (int i = 0; i < nworkers; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < nworkers; i++) {
        int status = 0, r;
        while ((r = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR)
            ;
        if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "event_server: worker %d failed\n", (int)pids[i]);
    }
    struct counters w;
    unsigned long long *sum = (unsigned long long *)&k, *add = (unsigned long long *)&w;
    while (read(cp[0], &w, sizeof w) == (ssize_t)sizeof w)
        for (size_t j = 0; j < sizeof k / sizeof *sum; j++)
            sum[j] += add[j];
    close(cp[0]);
    free(pids);
}

int main(int argc, char **argv)
{
    const char *bname = "epoll", *mname = "read";
    int port = 8080, nworkers = 0;
    long maxconn = 0;
    int opt;
    while ((opt = getopt(argc, argv, "b:p:f:n:m:c:w:h")) != -1) {
        switch (opt) {
        case 'b': bname = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'f': file = optarg; break;
        case 'n': maxconn = atol(optarg); break;
        case 'm': mname = optarg; break;
        case 'c': cache_name = optarg; break;
        case 'w': nworkers = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-b select|poll|epoll|epoll-et|rtsig|rtsig-onefd] "
                            "[-p PORT] [-f FILE] [-n MAXCONN] "
                            "[-m read|sendfile|splice|zerocopy] [-c CACHE] [-w WORKERS]\n",
                    argv[0]);
            return 2;
        }
    }
    uint32_t backend;
    if (shmio_backend_from_name(bname, &backend) != SHMIO_OK)
        die("-b");
    for (method = M_READ; method <= M_ZEROCOPY && strcmp(mname, method_names[method]); method++) {
    }
    if (method > M_ZEROCOPY || nworkers < 0) {
        fprintf(stderr, "event_server: bad -m or -w\n");
        return 2;
    }
    open_body();
    char own_cache[64];
    int cache_created = 0;
    if (method == M_SPLICE) {
        if (!cache_name) {
            snprintf(own_cache, sizeof own_cache, "shmio-event_server-%d", (int)getpid());
            cache_name = own_cache;
        }
        cache_created = open_cache(1);
        shmio_zc_cache_close(cache);  /* each serving process opens its own */
        cache = NULL;
    }

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    nconns_max = maxconn > 0 ? (size_t)maxconn + 16 : (size_t)rl.rlim_cur;
    if (nconns_max > (1u << 20))
        nconns_max = 1u << 20;
    /* Level-triggered backends let workers share the connections: take a few per event. */
    if (nworkers > 1 && strcmp(bname, "epoll-et") != 0 && strcmp(bname, "rtsig") != 0)
        accept_batch = 4;

    on_signals();
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (nworkers > 1 && backend == SHMIO_BACKEND_RTSIG)
        setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);  /* see worker_listener */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0)
        fail("bind/listen");
    socklen_t alen = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    printf("listening on 127.0.0.1:%d backend %s\n", ntohs(a.sin_port), bname);
    fflush(stdout);

    struct rusage ru;
    if (nworkers > 0) {
        run_workers(backend, lfd, nworkers);
        getrusage(RUSAGE_CHILDREN, &ru);
    } else {
        serve(backend, lfd);
        getrusage(RUSAGE_SELF, &ru);
    }
    printf("backend %s: requests %llu, connections accepted %llu, closed %llu, bad %llu\n",
           bname, k.requests, k.accepted, k.closed, k.bad);
    printf("method %s: bytes sent %llu, zerocopy sends the kernel copied %llu, workers %d\n",
           method_names[method], k.bytes, k.copied, nworkers);
    printf("cpu: user %.3f s, sys %.3f s\n", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    printf("poller: waits %llu, events %llu, syscalls %llu, overflows %llu, signals %llu\n",
           k.waits, k.events, k.syscalls, k.overflows, k.signals);
    fflush(stdout);
    if (cache_created)
        shmio_zc_cache_unlink(cache_name);
    close(lfd);
    return 0;
}
