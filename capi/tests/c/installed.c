/*
 * installed: built by capi/tests/c_abi.rs against an installation made by scripts/install.sh
 * (its header, its shmio.pc, its library alone), dynamically and statically. Checks the
 * version macros against the library, the limits macros, and a queue round trip in DIR.
 *
 *   installed DIR    prints "ok VERSION" and exits 0, or says what failed and exits 1
 */
#include <shmio.h>

#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "installed: %s failed: %s\n", #cond, shmio_last_error_message()); \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: installed DIR\n");
        return 2;
    }
    CHECK(SHMIO_VERSION_COMPATIBLE());
    CHECK(shmio_version_number() == SHMIO_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SHMIO_VERSION_MAJOR, SHMIO_VERSION_MINOR,
             SHMIO_VERSION_PATCH);
    CHECK(strcmp(shmio_version(), want) == 0);
    CHECK(SHMIO_MAX_CONSUMERS > 0 && SHMIO_MAX_SLOTS > 0 && SHMIO_MAX_SLOT_SIZE > 0);
    CHECK(SHMIO_MAX_NAME_LEN == 200);

    char path[4096];
    snprintf(path, sizeof path, "%s/installed.q", argv[1]);
    shmio_queue_options o;
    CHECK(shmio_queue_options_init(&o) == SHMIO_OK);
    o.slots = 8;
    o.slot_size = 64;
    shmio_producer *p = NULL;
    shmio_consumer *c = NULL;
    CHECK(shmio_producer_create(path, &o, &p) == SHMIO_OK);
    CHECK(shmio_consumer_open(path, SHMIO_START_OLDEST, 0, &c) == SHMIO_OK);
    shmio_buf recs[2] = {{"hello", 5}, {"world", 5}};
    size_t sent = 0, n = 0, lens[4];
    char buf[64];
    CHECK(shmio_producer_send_many(p, recs, 2, 0, &sent) == SHMIO_OK && sent == 2);
    CHECK(shmio_consumer_recv_many(c, buf, sizeof buf, lens, 4, 1000, &n) == SHMIO_OK);
    CHECK(n == 2 && lens[0] == 5 && memcmp(buf, "helloworld", 10) == 0);
    shmio_consumer_close(c);
    shmio_producer_close(p);
    CHECK(shmio_queue_unlink(path) == SHMIO_OK);
    printf("ok %s\n", shmio_version());
    return 0;
}
