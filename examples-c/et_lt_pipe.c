/*
 * et_lt_pipe - the epoll note's experiment: level- versus edge-triggered.
 *
 * For each backend: the read end of a pipe is registered, 2 KiB are written,
 * the poller reports it readable; 1 KiB is read (1 KiB stays in the pipe) and
 * the poller is asked again. Level-triggered backends report the pipe again,
 * because it is still readable; edge-triggered ones do not, because nothing
 * new arrived. The note's conclusion: with edge triggering, read until EAGAIN.
 *
 *   et_lt_pipe [BACKEND...]     default: epoll epoll-et (any of select, poll,
 *                                epoll, epoll-et, rtsig, rtsig-onefd)
 *
 * Prints one line per backend:
 *   epoll: 1st wait: readable; read 1024 of 2048; 2nd wait: readable again (level-triggered)
 */
#include <shmio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int run(const char *name)
{
    uint32_t backend;
    if (shmio_backend_from_name(name, &backend) != SHMIO_OK) {
        fprintf(stderr, "et_lt_pipe: %s\n", shmio_last_error_message());
        return 2;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK) != 0) {
        perror("pipe2");
        return 1;
    }
    shmio_poller *p = NULL;
    if (shmio_poller_new(backend, &p) != SHMIO_OK ||
        shmio_poller_register(p, fds[0], 1, SHMIO_INTEREST_READABLE) != SHMIO_OK) {
        fprintf(stderr, "et_lt_pipe: %s\n", shmio_last_error_message());
        return 1;
    }
    char buf[2048];
    memset(buf, 'x', sizeof buf);
    if (write(fds[1], buf, 2048) != 2048) {
        perror("write");
        return 1;
    }
    shmio_event ev[4];
    size_t n1 = 0, n2 = 0;
    shmio_poller_wait(p, ev, 4, 1000, &n1);
    ssize_t r = read(fds[0], buf, 1024);
    shmio_poller_wait(p, ev, 4, 100, &n2);
    printf("%s: 1st wait: %s; read %zd of 2048; 2nd wait: %s\n", name,
           n1 ? "readable" : "nothing", r,
           n2 ? "readable again (level-triggered)" : "nothing (edge-triggered)");
    shmio_poller_free(p);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *defaults[] = {"epoll", "epoll-et"};
    int rc = 0;
    if (argc < 2) {
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
            rc |= run(defaults[i]);
    } else {
        for (int i = 1; i < argc; i++)
            rc |= run(argv[i]);
    }
    return rc;
}
