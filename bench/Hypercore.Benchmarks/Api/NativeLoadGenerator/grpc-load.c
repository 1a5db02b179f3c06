/*
 * grpc-load: the API benchmark's native load generator (issue 15). The same protocol as the .NET one
 * (LoadGenerator.cs): N clients, each on its own HTTP/2 connection (h2c, prior knowledge), each doing one unary
 * gRPC call after another; a warm-up, then the line MEASURE on stdout, the measured window, then one
 * "RESULT {json}" line with the same keys. One thread and one epoll loop for all connections, HTTP/2 by libnghttp2:
 * a few microseconds of CPU per call, no collector, no thread pool, so the server under test keeps the CPUs the
 * .NET client (Grpc.Net.Client: 40-80 us per call here, its collections and thread hand-offs inside the measured
 * latency) took from it on a two-core machine.
 *
 * It knows nothing of protobuf: the runner gives the request message (hex) and, for Creates, where in it a fixed-
 * width id goes; each call writes "<prefix>-<client:04>-<index:010>" there, so every Create has its own id.
 *
 * Usage: grpc-load --target http://HOST:PORT --path /pkg.Service/Method --call NAME --clients N --seconds S
 *        [--body-hex HEX] [--id-offset N --prefix P] [--expect-hex HEX]
 * A call counts when its grpc-status is 0 (and its response message equals --expect-hex, when given); any other
 * end is an error (the first one's status and message go to stderr).
 * HYPERCORE_BENCH_LATENCY_TRACE=file: as the .NET one, "<client> <end ns> <latency ns>" per measured call to file.NAME.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ID_INDEX_RUN (1u << 30) /* ids differ between the warm-up and the run, as in the .NET client */

typedef struct {
    int64_t *v;
    size_t n, cap;
} vec;

typedef struct conn {
    int index, fd;
    nghttp2_session *session;
    unsigned char *request; /* the 5-byte gRPC prefix + the message */
    size_t request_len, request_sent;
    int64_t started;        /* CLOCK_MONOTONIC ns of the call in flight; 0 when idle */
    uint32_t next;          /* the next call's index */
    int status;             /* grpc-status of the call in flight; -1 until seen */
    char message[256];      /* grpc-message */
    unsigned char reply[512];
    size_t reply_len;
    int reply_overflow;
    unsigned char *out;     /* bytes nghttp2 gave that the socket did not take yet */
    size_t out_len, out_cap;
    int want_out;
    vec latencies, ends;
} conn;

static const char *target_host, *target_port, *path, *call_name = "call", *prefix = "lg";
static char authority[256];
static unsigned char *body, *expect;
static size_t body_len, expect_len;
static long id_offset = -1;
static int clients, epfd, phase_run, errors;
static int64_t stop_at;
static double seconds;
static conn *conns;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("grpc-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void push(vec *v, int64_t x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4096;
        v->v = realloc(v->v, v->cap * sizeof *v->v);
        if (!v->v) die("out of memory");
    }
    v->v[v->n++] = x;
}

static unsigned char *from_hex(const char *hex, size_t *len) {
    size_t n = strlen(hex);
    if (n % 2) die("odd-length hex: %s", hex);
    unsigned char *b = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) die("not hex: %s", hex);
        b[i] = (unsigned char)v;
    }
    *len = n / 2;
    return b;
}

static void want_output(conn *c, int on) {
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    c->want_out = on;
}

/* Everything nghttp2 has to send goes out in as few writes as the socket takes. */
static void flush(conn *c) {
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) die("client %d: nghttp2_session_mem_send: %s", c->index, nghttp2_strerror((int)n));
        if (n == 0) break;
        if (c->out_len + (size_t)n > c->out_cap) {
            c->out_cap = (c->out_len + (size_t)n) * 2;
            c->out = realloc(c->out, c->out_cap);
            if (!c->out) die("out of memory");
        }
        memcpy(c->out + c->out_len, data, (size_t)n);
        c->out_len += (size_t)n;
    }
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t w = write(c->fd, c->out + done, c->out_len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            die("client %d: write: %s", c->index, strerror(errno));
        }
        done += (size_t)w;
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
    want_output(c, c->out_len > 0);
}

static ssize_t read_request(nghttp2_session *s, int32_t stream, uint8_t *buf, size_t length, uint32_t *flags,
                            nghttp2_data_source *source, void *user) {
    (void)s; (void)stream; (void)source;
    conn *c = user;
    size_t n = c->request_len - c->request_sent;
    if (n > length) n = length;
    memcpy(buf, c->request + c->request_sent, n);
    c->request_sent += n;
    if (c->request_sent == c->request_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void start_call(conn *c) {
    if (id_offset >= 0) {
        char id[64];
        int w = snprintf(id, sizeof id, "%s-%04d-%010u", prefix, c->index, c->next);
        memcpy(c->request + 5 + id_offset, id, (size_t)w);
    }
    c->next++;
    c->request_sent = 0;
    c->status = -1;
    c->message[0] = 0;
    c->reply_len = 0;
    c->reply_overflow = 0;
#define HDR(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME}
    nghttp2_nv headers[] = {
        HDR(":method", "POST"), HDR(":scheme", "http"), HDR(":authority", authority), HDR(":path", path),
        HDR("content-type", "application/grpc"), HDR("te", "trailers"), HDR("user-agent", "hypercore-grpc-load"),
    };
#undef HDR
    nghttp2_data_provider data = {.read_callback = read_request};
    c->started = now_ns();
    int32_t id = nghttp2_submit_request(c->session, NULL, headers, sizeof headers / sizeof headers[0], &data, c);
    if (id < 0) die("client %d: nghttp2_submit_request: %s", c->index, nghttp2_strerror(id));
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user) {
    (void)s; (void)frame; (void)flags;
    conn *c = user;
    if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        char v[16] = {0};
        memcpy(v, value, valuelen < 15 ? valuelen : 15);
        c->status = atoi(v);
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        size_t n = valuelen < sizeof c->message - 1 ? valuelen : sizeof c->message - 1;
        memcpy(c->message, value, n);
        c->message[n] = 0;
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream, const uint8_t *data, size_t len, void *user) {
    (void)s; (void)flags; (void)stream;
    conn *c = user;
    if (c->reply_len + len > sizeof c->reply) {
        c->reply_overflow = 1;
        return 0;
    }
    memcpy(c->reply + c->reply_len, data, len);
    c->reply_len += len;
    return 0;
}

static int on_close(nghttp2_session *s, int32_t stream, uint32_t error_code, void *user) {
    (void)s; (void)stream;
    conn *c = user;
    int64_t end = now_ns();
    int ok = error_code == 0 && c->status == 0;
    /* The reply: the 5-byte gRPC prefix (not compressed, its length) and the message. */
    if (ok && expect) {
        ok = !c->reply_overflow && c->reply_len == 5 + expect_len && c->reply[0] == 0 &&
             memcmp(c->reply + 5, expect, expect_len) == 0;
        if (!ok && errors == 0) snprintf(c->message, sizeof c->message, "unexpected reply (%zu bytes)", c->reply_len);
    }
    if (ok) {
        push(&c->latencies, end - c->started);
        if (phase_run) push(&c->ends, end);
    } else {
        if (errors == 0)
            fprintf(stderr, "grpc-load: client %d: call failed: stream error %u, grpc-status %d: %s\n", c->index,
                    error_code, c->status, c->message);
        errors++;
    }
    c->started = 0;
    return 0;
}

static void connect_all(void) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(target_host, target_port, &hints, &ai);
    if (rc) die("%s:%s: %s", target_host, target_port, gai_strerror(rc));
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    for (int i = 0; i < clients; i++) {
        conn *c = &conns[i];
        c->index = i;
        c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0)
            die("connect %s:%s: %s", target_host, target_port, strerror(errno));
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        if (nghttp2_session_client_new(&c->session, cb, c)) die("nghttp2_session_client_new");
        nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
        nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 1);
        c->request_len = 5 + body_len;
        c->request = malloc(c->request_len);
        c->request[0] = 0; /* not compressed */
        uint32_t n = htonl((uint32_t)body_len);
        memcpy(c->request + 1, &n, 4);
        memcpy(c->request + 5, body, body_len);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    }
    nghttp2_session_callbacks_del(cb);
    freeaddrinfo(ai);
}

/* One phase: every client calls until stop_at, then finishes its call in flight. Returns the phase's seconds. */
static double run_phase(double secs, uint32_t first_index) {
    int64_t started = now_ns();
    stop_at = started + (int64_t)(secs * 1e9);
    int busy = 0;
    for (int i = 0; i < clients; i++) {
        conns[i].next = first_index;
        start_call(&conns[i]);
        flush(&conns[i]);
        busy++;
    }
    static unsigned char buf[1 << 16];
    struct epoll_event events[256];
    while (busy > 0) {
        int n = epoll_wait(epfd, events, 256, 1000);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int e = 0; e < n; e++) {
            conn *c = events[e].data.ptr;
            if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(c->fd, buf, sizeof buf);
                if (r == 0) die("client %d: the server closed the connection", c->index);
                if (r < 0 && errno != EAGAIN && errno != EINTR) die("client %d: read: %s", c->index, strerror(errno));
                if (r > 0) {
                    ssize_t used = nghttp2_session_mem_recv(c->session, buf, (size_t)r);
                    if (used < 0) die("client %d: nghttp2_session_mem_recv: %s", c->index, nghttp2_strerror((int)used));
                }
            }
            if (c->started == 0 && c->next != (uint32_t)-1) {
                if (now_ns() < stop_at) {
                    start_call(c);
                } else {
                    c->next = (uint32_t)-1; /* done for this phase */
                    busy--;
                }
            }
            flush(c);
        }
    }
    return (double)(now_ns() - started) / 1e9;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(const int64_t *sorted, size_t n, double p) {
    if (n == 0) return NAN;
    size_t i = (size_t)ceil(p * (double)n) - 1;
    if (i >= n) i = n - 1;
    return (double)sorted[i] / 1e6;
}

static long switches(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_nvcsw + ru.ru_nivcsw;
}

static double cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int main(int argc, char **argv) {
    const char *target = NULL;
    for (int i = 1; i < argc; i++) {
#define VALUE() (i + 1 < argc ? argv[++i] : (die("%s needs a value", argv[i]), ""))
        if (!strcmp(argv[i], "--target")) target = VALUE();
        else if (!strcmp(argv[i], "--path")) path = VALUE();
        else if (!strcmp(argv[i], "--call")) call_name = VALUE();
        else if (!strcmp(argv[i], "--clients")) clients = atoi(VALUE());
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(VALUE());
        else if (!strcmp(argv[i], "--body-hex")) body = from_hex(VALUE(), &body_len);
        else if (!strcmp(argv[i], "--expect-hex")) expect = from_hex(VALUE(), &expect_len);
        else if (!strcmp(argv[i], "--id-offset")) id_offset = atol(VALUE());
        else if (!strcmp(argv[i], "--prefix")) prefix = VALUE();
        else die("unknown argument %s", argv[i]);
#undef VALUE
    }
    if (!target || !path || clients <= 0 || seconds <= 0)
        die("needs --target http://HOST:PORT, --path /Service/Method, --clients N > 0, --seconds S > 0");
    if (strncmp(target, "http://", 7)) die("--target must be http://HOST:PORT (h2c), not %s", target);
    strncpy(authority, target + 7, sizeof authority - 1);
    authority[strcspn(authority, "/")] = 0;
    char *colon = strrchr(authority, ':');
    if (!colon) die("--target needs a port: %s", target);
    static char host[256];
    memcpy(host, authority, (size_t)(colon - authority));
    target_host = host[0] == '[' ? (host[strlen(host) - 1] = 0, host + 1) : host;
    target_port = colon + 1;
    if (!body) body = from_hex("", &body_len);
    if (id_offset >= 0) {
        /* The runner's placeholder ('#' bytes) must be exactly as wide as every id written there (the index always takes
           10 digits; the client 4 while there are at most 10,000): a wider or narrower id would corrupt the message. */
        size_t slot = 0;
        while ((size_t)id_offset + slot < body_len && body[id_offset + slot] == '#') slot++;
        char id[64];
        int w = snprintf(id, sizeof id, "%s-%04d-%010u", prefix, clients - 1, ID_INDEX_RUN);
        if ((size_t)w != slot)
            die("the id placeholder at --id-offset %ld is %zu bytes, the ids here are %d (%s)", id_offset, slot, w, id);
    }

    conns = calloc((size_t)clients, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    connect_all();

    double warm_secs = seconds < 3 ? seconds : 3;
    run_phase(warm_secs, 0);
    size_t warm = 0;
    for (int i = 0; i < clients; i++) {
        warm += conns[i].latencies.n;
        conns[i].latencies.n = 0;
    }
    errors = 0; /* as the .NET client: the warm-up's failures are not the run's */

    printf("MEASURE\n");
    fflush(stdout);
    double cpu0 = cpu_us();
    long sw0 = switches();
    phase_run = 1;
    double elapsed = run_phase(seconds, ID_INDEX_RUN);
    double cpu = cpu_us() - cpu0;
    long sw = switches() - sw0;

    size_t count = 0;
    for (int i = 0; i < clients; i++) count += conns[i].latencies.n;
    int64_t *all = malloc((count + 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, conns[i].latencies.v, conns[i].latencies.n * sizeof *all);
        k += conns[i].latencies.n;
    }
    const char *trace = getenv("HYPERCORE_BENCH_LATENCY_TRACE");
    if (trace && *trace) {
        char name[4096];
        snprintf(name, sizeof name, "%s.%s", trace, call_name);
        FILE *f = fopen(name, "w");
        if (!f) die("%s: %s", name, strerror(errno));
        for (int i = 0; i < clients; i++)
            for (size_t j = 0; j < conns[i].latencies.n; j++)
                fprintf(f, "%d %lld %lld\n", i, (long long)conns[i].ends.v[j], (long long)conns[i].latencies.v[j]);
        fclose(f);
    }
    qsort(all, count, sizeof *all, cmp64);
    double per = count ? 1.0 / (double)count : 0;
    printf("RESULT {\"rate\":%.3f,\"count\":%zu,\"warm_count\":%zu,\"errors\":%d,\"seconds\":%.6f,\"p50_ms\":%.6f,\"p99_ms\":%.6f,"
           "\"client_cpu_us_per\":%.3f,\"client_ctxsw_per\":%.4f,\"client_gc\":0,\"client_gen0\":0,\"client_gen1\":0,\"client_gen2\":0,"
           "\"client_gc_pause_ms\":0,\"client_gc_pause_ms_per_gc\":0,\"client_alloc_kb_per\":0,\"client_jit_methods\":0,\"client_native\":1}\n",
           (double)count / elapsed, count, warm, errors, elapsed, count ? percentile_ms(all, count, 0.50) : 0,
           count ? percentile_ms(all, count, 0.99) : 0, cpu * per, (double)sw * per);
    fflush(stdout);
    for (int i = 0; i < clients; i++) {
        nghttp2_session_del(conns[i].session);
        close(conns[i].fd);
    }
    return 0;
}
