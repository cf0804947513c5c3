/* Compiled and run by capi/tests/c_abi.rs: the header compiles cleanly as strict C11 and the
 * library links and works from C. scripts/c_sanitize.sh also runs it built with ASan and UBSan
 * and under valgrind; the fork below is there for them too (a child of a process with keeper
 * threads and shmio's fork handlers). region_replica() runs the region's change-tracking,
 * replica and writer-claim calls, the replica state written into the header as a bridge would. */
#define _POSIX_C_SOURCE 200809L
#include "shmio.h"

#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
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

/* Offsets in the region file's header (tests/src/layout.rs, module `region`) of the replication
 * state its bridge writes: the role word (1: replica), the primary's incarnation, and when the
 * replica was last in sync (Unix ns). The smoke test plays the bridge through them. */
#define R_HEADER 4096
#define R_ROLE 512
#define R_SOURCE 520
#define R_SYNCED 552

static uint64_t unix_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Change tracking, the replica state, fresh reads, promotion and the writer claim. */
static int region_replica(const char *queue_name) {
  char rname[80];
  snprintf(rname, sizeof rname, "%s-region", queue_name);

  /* A caller of the first version of the options struct (no chunk_size) still works. */
  struct {
    uint32_t struct_size, mode, flags;
  } v1 = {12, 0600, 0};
  shmio_region *r = NULL;
  CHECK(shmio_region_create(rname, 8192, (const shmio_region_options *)(const void *)&v1, &r),
        SHMIO_OK);
  uint64_t chunk = 0, inc = 0, v = 0;
  CHECK(shmio_region_chunk_size(r, &chunk), SHMIO_OK);
  if (chunk != 4096) return 20;
  shmio_region_close(r);
  CHECK(shmio_region_unlink(rname), SHMIO_OK);

  shmio_region_options ro;
  CHECK(shmio_region_options_init(&ro), SHMIO_OK);
  ro.chunk_size = 100;
  CHECK(shmio_region_create(rname, 8192, &ro, &r), SHMIO_ERR_INVALID_ARGUMENT);
  ro.chunk_size = 256;
  CHECK(shmio_region_create(rname, 8192, &ro, &r), SHMIO_OK);
  CHECK(shmio_region_chunk_size(r, &chunk), SHMIO_OK);
  CHECK(shmio_region_incarnation(r, &inc), SHMIO_OK);
  if (chunk != 256) return 21;

  void *data = NULL;
  size_t len = 0;
  CHECK(shmio_region_data(r, &data, &len), SHMIO_OK);
  memcpy(data, "raw!", 4);
  CHECK(shmio_region_touch_range(r, 0, 4, &v), SHMIO_OK);
  if (v != 1) return 22;
  CHECK(shmio_region_touch_range(r, 8190, 4, &v), SHMIO_ERR_INVALID_ARGUMENT);

  /* A primary: no replica state, fresh reads are plain reads. */
  shmio_region_replica_stats rs;
  CHECK(shmio_region_replica_stats_init(&rs), SHMIO_OK);
  CHECK(shmio_region_replica(r, &rs), SHMIO_OK);
  if (rs.struct_size != sizeof rs || rs.is_replica != 0 || rs.staleness_ms != 0) return 23;
  char buf[8] = {0};
  CHECK(shmio_region_read_fresh(r, 0, buf, 4, 0, &v), SHMIO_OK);
  if (memcmp(buf, "raw!", 4) != 0) return 24;

  /* The writer claim. */
  uint32_t state = 9, pid = 9;
  shmio_region_claim *claim = NULL, *again = NULL;
  CHECK(shmio_region_writer(r, &state, &pid), SHMIO_OK);
  if (state != SHMIO_REGION_WRITER_NONE) return 25;
  CHECK(shmio_region_claim_writer(r, &claim), SHMIO_OK);
  CHECK(shmio_region_claim_writer(r, &again), SHMIO_ERR_WRITER_EXISTS);
  if (again != NULL) return 26;
  CHECK(shmio_region_writer(r, &state, &pid), SHMIO_OK);
  if (state != SHMIO_REGION_WRITER_ALIVE || pid != (uint32_t)getpid()) return 27;
  shmio_region_claim_release(claim);
  shmio_region_claim_release(NULL);
  CHECK(shmio_region_writer(r, &state, NULL), SHMIO_OK);
  if (state != SHMIO_REGION_WRITER_DEAD) return 28;

  /* Play the bridge: make it a replica of primary 0x5eed, last in sync 10 s ago. */
  unsigned char *header = (unsigned char *)data - R_HEADER;
  uint32_t role = 1;
  uint64_t source = 0x5eed, synced = unix_ns() - 10000000000u;
  memcpy(header + R_SOURCE, &source, 8);
  memcpy(header + R_SYNCED, &synced, 8);
  memcpy(header + R_ROLE, &role, 4);
  CHECK(shmio_region_replica(r, &rs), SHMIO_OK);
  if (rs.is_replica != 1 || rs.source != 0x5eed || rs.heard_ms != SHMIO_REGION_NEVER ||
      rs.staleness_ms < 9000 || rs.staleness_ms > 600000)
    return 29;
  memset(buf, 0, sizeof buf);
  CHECK(shmio_region_read_fresh(r, 0, buf, 4, 1000, &v), SHMIO_ERR_STALE);
  if (strstr(shmio_last_error_message(), "allowed: 1000 ms") == NULL || buf[0] != 0) return 30;
  CHECK(shmio_region_check_fresh(r, 1000), SHMIO_ERR_STALE);
  CHECK(shmio_region_read_fresh(r, 0, buf, 4, 600000, &v), SHMIO_OK);
  if (memcmp(buf, "raw!", 4) != 0) return 31;
  CHECK(shmio_region_write(r, 0, "mine", 4, NULL), SHMIO_ERR_READ_ONLY);
  CHECK(shmio_region_touch_range(r, 0, 4, NULL), SHMIO_ERR_READ_ONLY);

  /* Failover: a primary of its own, with a new incarnation. */
  uint64_t inc2 = 0;
  CHECK(shmio_region_promote(r, &v), SHMIO_OK);
  CHECK(shmio_region_incarnation(r, &inc2), SHMIO_OK);
  if (inc2 == inc) return 32;
  CHECK(shmio_region_write(r, 0, "mine", 4, NULL), SHMIO_OK);
  CHECK(shmio_region_replica(r, &rs), SHMIO_OK);
  if (rs.is_replica != 0) return 33;
  CHECK(shmio_region_replica(NULL, &rs), SHMIO_ERR_NULL_POINTER);

  shmio_region_close(r);
  CHECK(shmio_region_unlink(rname), SHMIO_OK);
  return 0;
}

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
  CHECK(shmio_queue_info_init(&info), SHMIO_OK);
  CHECK(shmio_consumer_info(c, &info), SHMIO_OK);
  if (info.slot_count != 16 || info.slot_size != 64 || info.policy != SHMIO_POLICY_BACKPRESSURE)
    return 9;
  if (info.struct_size != sizeof info) return 9;

  shmio_queue_stats stats;
  shmio_consumer_stats cs[4];
  size_t n = 0;
  CHECK(shmio_queue_stats_init(&stats), SHMIO_OK);
  CHECK(shmio_consumer_stats_init(&cs[0]), SHMIO_OK); /* element 0 gives the stride */
  CHECK(shmio_queue_stats_get(name, &stats, cs, 4, &n), SHMIO_OK);
  if (n != 1 || stats.head != 2 || stats.producer_state != SHMIO_PRODUCER_ALIVE) return 10;
  if (cs[0].struct_size != sizeof cs[0] || cs[0].pid != (uint32_t)getpid()) return 10;

  /* Structs that may grow: an uninitialised struct_size (0 here) is refused, nothing written;
   * a program built against a newer header (a larger struct) keeps the fields this library
   * does not know. */
  shmio_queue_stats zero;
  memset(&zero, 0, sizeof zero);
  CHECK(shmio_queue_stats_get(name, &zero, NULL, 0, NULL), SHMIO_ERR_INVALID_ARGUMENT);
  if (zero.head != 0 || strstr(shmio_last_error_message(), "struct_size") == NULL) return 15;
  struct {
    shmio_queue_stats s;
    uint64_t added[2];
  } newer;
  memset(&newer, 0xAA, sizeof newer);
  newer.s.struct_size = sizeof newer;
  CHECK(shmio_queue_stats_get(name, &newer.s, NULL, 0, NULL), SHMIO_OK);
  if (newer.s.struct_size != sizeof newer.s || newer.s.head != 2 ||
      newer.added[0] != UINT64_C(0xAAAAAAAAAAAAAAAA) || newer.added[1] != newer.added[0])
    return 16;

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
    shmio_queue_info_init(&own_info);
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

  int rc = region_replica(name);
  if (rc != 0) return rc;

  puts("c abi smoke: ok");
  return 0;
}
