/* Compiled and run by capi/tests/c_abi.rs: the header compiles cleanly as strict C11 and the
 * library links and works from C. scripts/c_sanitize.sh also runs it built with ASan and UBSan
 * and under valgrind; the fork below is there for them too (a child of a process with keeper
 * threads and shmio's fork handlers). */
#define _POSIX_C_SOURCE 200809L
#include "shmio.h"

#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(expr, want)                                                                   \
  do {                                                                                      \
    shmio_status st_ = (expr);                                                              \
    if (st_ != (want)) {                                                                    \
      fprintf(stderr, "%s:%d: %s -> %u (%s: %s), wanted %u\n", __FILE__, __LINE__, #expr,  \
              (unsigned)st_, shmio_status_str((uint32_t)st_), shmio_last_error_message(),   \
              (unsigned)(want));                                                            \
      return 1;                                                                             \
    }                                                                                       \
  } while (0)

int main(void) {
  char name[64];
  snprintf(name, sizeof name, "shmio-capi-c-smoke-%ld", (long)getpid());

  if (strcmp(shmio_version(), "0.1.0") != 0) return 2;
  if (strcmp(shmio_status_str(SHMIO_ERR_TIMEOUT), "timed out") != 0) return 3;

  shmio_queue_options opts;
  CHECK(shmio_queue_options_init(&opts), SHMIO_OK);
  opts.slots = 16;
  opts.slot_size = 64;
  opts.policy = SHMIO_POLICY_BACKPRESSURE;

  shmio_producer *p = NULL;
  shmio_consumer *c = NULL;
  CHECK(shmio_producer_create(name, &opts, &p), SHMIO_OK);
  CHECK(shmio_consumer_open(name, 7, 0, &c), SHMIO_ERR_INVALID_ARGUMENT);
  if (c != NULL || shmio_last_error_message()[0] == '\0') return 4;
  CHECK(shmio_consumer_open(name, SHMIO_START_OLDEST, 0, &c), SHMIO_OK);

  uint64_t seq = 99;
  CHECK(shmio_producer_send(p, "hello", 5, -1, &seq), SHMIO_OK);
  if (seq != 0) return 5;

  void *wbuf = NULL;
  size_t cap = 0;
  CHECK(shmio_producer_reserve(p, 0, &wbuf, &cap), SHMIO_OK);
  memcpy(wbuf, "zc", 2);
  CHECK(shmio_producer_commit(p, 2, NULL), SHMIO_OK);

  char buf[64];
  size_t len = 0;
  CHECK(shmio_consumer_recv(c, buf, 2, 0, &len, NULL), SHMIO_ERR_BUFFER_TOO_SMALL);
  if (len != 5) return 6;
  CHECK(shmio_consumer_recv(c, buf, sizeof buf, 0, &len, &seq), SHMIO_OK);
  if (len != 5 || memcmp(buf, "hello", 5) != 0 || seq != 0) return 7;

  const void *data = NULL;
  CHECK(shmio_consumer_read(c, 100, &data, &len, &seq), SHMIO_OK);
  if (len != 2 || memcmp(data, "zc", 2) != 0 || seq != 1) return 8;
  CHECK(shmio_consumer_release(c), SHMIO_OK);
  CHECK(shmio_consumer_recv(c, buf, sizeof buf, 0, &len, NULL), SHMIO_ERR_WOULD_BLOCK);

  shmio_queue_info info;
  CHECK(shmio_consumer_info(c, &info), SHMIO_OK);
  if (info.slot_count != 16 || info.slot_size != 64 || info.policy != SHMIO_POLICY_BACKPRESSURE)
    return 9;

  shmio_queue_stats stats;
  shmio_consumer_stats cs[4];
  size_t n = 0;
  CHECK(shmio_queue_stats_get(name, &stats, cs, 4, &n), SHMIO_OK);
  if (n != 1 || stats.head != 2 || stats.producer_state != SHMIO_PRODUCER_ALIVE) return 10;

  /* A child: the inherited handles answer SHMIO_ERR_FORKED and close harmlessly; the child
   * opens (and closes) a handle of its own. */
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return 12;
  if (pid == 0) {
    int code = 0;
    if (shmio_producer_send(p, "x", 1, 0, NULL) != SHMIO_ERR_FORKED) code |= 1;
    if (shmio_consumer_recv(c, buf, sizeof buf, 0, &len, NULL) != SHMIO_ERR_FORKED) code |= 2;
    shmio_consumer_close(c);
    shmio_producer_close(p);
    shmio_consumer *own = NULL;
    shmio_queue_info own_info;
    if (shmio_consumer_open(name, SHMIO_START_NEWEST, 0, &own) != SHMIO_OK ||
        shmio_consumer_info(own, &own_info) != SHMIO_OK || own_info.slot_count != 16)
      code |= 4;
    shmio_consumer_close(own);
    /* _exit, not exit: LeakSanitizer's exit-time check in a child sees only the child's thread,
     * so what the parent's keeper threads own (their closures, thread-local destructors, buffers
     * on their stacks), copied into the child with the rest of the memory, looks leaked. The
     * child cannot free it either (the threads are the parent's). valgrind scans those copied
     * stacks and checks the child's leaks at _exit too. */
    _exit(code);
  }
  int wst = 0;
  if (waitpid(pid, &wst, 0) != pid || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
    fprintf(stderr, "forked child: wait status %#x (exit bits: 1 send, 2 recv, 4 own)\n", wst);
    return 13;
  }
  CHECK(shmio_producer_send(p, "after", 5, 0, NULL), SHMIO_OK);
  CHECK(shmio_consumer_recv(c, buf, sizeof buf, 1000, &len, NULL), SHMIO_OK);
  if (len != 5 || memcmp(buf, "after", 5) != 0) return 14;

  shmio_producer_close(p);
  CHECK(shmio_consumer_recv(c, buf, sizeof buf, -1, &len, NULL), SHMIO_ERR_CLOSED);
  shmio_consumer_close(c);
  CHECK(shmio_queue_unlink(name), SHMIO_OK);
  CHECK(shmio_queue_unlink(NULL), SHMIO_ERR_NULL_POINTER);

  shmio_tqueue *q = NULL;
  int item = 42;
  void *out = NULL;
  CHECK(shmio_tqueue_new(1, &q), SHMIO_OK);
  CHECK(shmio_tqueue_push(q, &item, 0), SHMIO_OK);
  CHECK(shmio_tqueue_push(q, &item, 5), SHMIO_ERR_TIMEOUT);
  CHECK(shmio_tqueue_pop(q, &out, 0), SHMIO_OK);
  if (out != &item) return 11;
  CHECK(shmio_tqueue_close(q), SHMIO_OK);
  CHECK(shmio_tqueue_pop(q, &out, -1), SHMIO_ERR_CLOSED);
  shmio_tqueue_free(q);

  puts("c abi smoke: ok");
  return 0;
}
