/*
 * ompi_bench: point-to-point and collective micro-benchmarks for any MPI library,
 * printing tables in the same layout as the OSU micro-benchmarks, so that
 * scripts/compare.sh can parse rmpi's Rust programs and this one with the same code.
 *
 * Written for the rmpi project (not derived from the OSU sources).
 *
 * Usage:  mpirun -n N ./ompi_bench TEST [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]
 *   TEST     latency | bw | bcast | reduce | allreduce | gather | scatter | barrier |
 *            allgather | alltoall | reduce_scatter | scan
 *   -m       message sizes in bytes: MIN:MAX, MAX or MIN: (powers of two in between)
 *   -i       iterations for small messages (<= 8 KiB); larger ones scale down as 1/size
 *   -x       warm-up iterations per size (default: a tenth of the timed ones, at least 1)
 *   -f       collectives: also print min/max latency over ranks and the iteration count
 *
 * Size conventions (the same as OSU): latency/bw/bcast: bytes per message; gather, scatter,
 * allgather: bytes contributed per rank; alltoall: bytes per pair; reduce, allreduce, scan:
 * bytes of MPI_DOUBLE data summed with MPI_SUM (count = size/8, at least 1); reduce_scatter:
 * total bytes of the reduced vector, each rank receiving 1/p of it (at least 1 double).
 */
#include <mpi.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMALL_LIMIT 8192
#define BW_WINDOW 64

enum kind { K_P2P, K_COLL, K_BARRIER };

struct opts {
    size_t min_size, max_size;
    int iters, warmup, full;
};

struct test;
typedef void (*coll_fn)(const struct test *t, size_t size, void *s, void *r, int p);

struct test {
    const char *name;
    const char *title;
    enum kind kind;
    size_t default_min;
    int default_iters;
    int iter_floor;
    coll_fn run;
    /* buffer bytes needed for a message of `size` bytes with `p` ranks */
    size_t send_mult, recv_mult; /* multiples of p (1) or of 1 (0) */
};

static int g_rank, g_size;

static void die(const char *msg)
{
    if (g_rank == 0)
        fprintf(stderr, "ompi_bench: %s\n", msg);
    MPI_Abort(MPI_COMM_WORLD, 2);
    exit(2);
}

static int ndoubles(size_t size) { return size < 8 ? 1 : (int)(size / 8); }

static void do_bcast(const struct test *t, size_t size, void *s, void *r, int p)
{
    (void)t; (void)r; (void)p;
    MPI_Bcast(s, (int)size, MPI_CHAR, 0, MPI_COMM_WORLD);
}

static void do_reduce(const struct test *t, size_t size, void *s, void *r, int p)
{
    (void)t; (void)p;
    MPI_Reduce(s, r, ndoubles(size), MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
}

static void do_allreduce(const struct test *t, size_t size, void *s, void *r, int p)
{
    (void)t; (void)p;
    MPI_Allreduce(s, r, ndoubles(size), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static void do_scan(const struct test *t, size_t size, void *s, void *r, int p)
{
    (void)t; (void)p;
    MPI_Scan(s, r, ndoubles(size), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static void do_gather(const struct test *t, size_t size, void *s, void *r, int p)
{
    (void)t; (void)p;
    MPI_Gather(s, (int)size, MPI_CHAR, r, (int)size, MPI_CHAR, 0, MPI_COMM_WORLD);
}

static void do_scatter(const struct test *t, size_t size, void *s, void *r, int p)
{
    (void)t; (void)p;
    MPI_Scatter(s, (int)size, MPI_CHAR, r, (int)size, MPI_CHAR, 0, MPI_COMM_WORLD);
}

static void do_allgather(const struct test *t, size_t size, void *s, void *r, int p)
{
    (void)t; (void)p;
    MPI_Allgather(s, (int)size, MPI_CHAR, r, (int)size, MPI_CHAR, MPI_COMM_WORLD);
}

static void do_alltoall(const struct test *t, size_t size, void *s, void *r, int p)
{
    (void)t; (void)p;
    MPI_Alltoall(s, (int)size, MPI_CHAR, r, (int)size, MPI_CHAR, MPI_COMM_WORLD);
}

static void do_reduce_scatter(const struct test *t, size_t size, void *s, void *r, int p)
{
    (void)t;
    int per = ndoubles(size) / p;
    if (per < 1)
        per = 1;
    MPI_Reduce_scatter_block(s, r, per, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static const struct test TESTS[] = {
    {"latency", "Latency Test", K_P2P, 0, 1000, 20, NULL, 0, 0},
    {"bw", "Bandwidth Test", K_P2P, 1, 100, 1, NULL, 0, 0},
    {"bcast", "Broadcast Latency Test", K_COLL, 8, 1000, 10, do_bcast, 0, 0},
    {"reduce", "Reduce Latency Test", K_COLL, 8, 1000, 10, do_reduce, 0, 0},
    {"allreduce", "Allreduce Latency Test", K_COLL, 8, 1000, 10, do_allreduce, 0, 0},
    {"gather", "Gather Latency Test", K_COLL, 8, 1000, 10, do_gather, 0, 1},
    {"scatter", "Scatter Latency Test", K_COLL, 8, 1000, 10, do_scatter, 1, 0},
    {"barrier", "Barrier Latency Test", K_BARRIER, 0, 1000, 10, NULL, 0, 0},
    {"allgather", "Allgather Latency Test", K_COLL, 8, 1000, 10, do_allgather, 0, 1},
    {"alltoall", "All-to-All Latency Test", K_COLL, 8, 1000, 10, do_alltoall, 1, 1},
    {"reduce_scatter", "Reduce_scatter Latency Test", K_COLL, 8, 1000, 10, do_reduce_scatter,
     0, 0},
    {"scan", "Scan Latency Test", K_COLL, 8, 1000, 10, do_scan, 0, 0},
};

/* Timed iterations for one size: `base` up to SMALL_LIMIT bytes, then base*SMALL_LIMIT/size,
 * never fewer than `floor`, so a sweep up to 16 MiB takes seconds. */
static int scaled_iters(size_t size, int base, int floor)
{
    long it = base;
    if (size > SMALL_LIMIT)
        it = (long)((double)base * SMALL_LIMIT / (double)size);
    if (it < floor)
        it = floor;
    if (it > base)
        it = base;
    return (int)it;
}

static int warmup_for(const struct opts *o, int iters)
{
    if (o->warmup >= 0)
        return o->warmup;
    return iters / 10 < 1 ? 1 : iters / 10;
}

static void *xalloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 1;
    if (posix_memalign(&p, 4096, bytes) != 0)
        die("out of memory");
    memset(p, 1, bytes);
    return p;
}

static size_t next_size(size_t s) { return s == 0 ? 1 : s * 2; }

/* One timed step of a two-rank test on a `size`-byte buffer shared with `peer`. */
typedef void (*p2p_step)(char *buf, size_t size, int peer);

/* latency: one round trip, rank 0 sends first */
static void ping_pong(char *buf, size_t size, int peer)
{
    if (g_rank == 0) {
        MPI_Send(buf, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD);
        MPI_Recv(buf, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        MPI_Recv(buf, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Send(buf, (int)size, MPI_CHAR, peer, 1, MPI_COMM_WORLD);
    }
}

/* bw: a window of non-blocking sends from rank 0, then a 4-byte ack back */
static void window(char *buf, size_t size, int peer)
{
    MPI_Request reqs[BW_WINDOW];
    char ack[4] = {0};
    if (g_rank == 0) {
        for (int w = 0; w < BW_WINDOW; w++)
            MPI_Isend(buf, (int)size, MPI_CHAR, peer, 2, MPI_COMM_WORLD, &reqs[w]);
        MPI_Waitall(BW_WINDOW, reqs, MPI_STATUSES_IGNORE);
        MPI_Recv(ack, 4, MPI_CHAR, peer, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        for (int w = 0; w < BW_WINDOW; w++)
            MPI_Irecv(buf, (int)size, MPI_CHAR, peer, 2, MPI_COMM_WORLD, &reqs[w]);
        MPI_Waitall(BW_WINDOW, reqs, MPI_STATUSES_IGNORE);
        MPI_Send(ack, 4, MPI_CHAR, peer, 3, MPI_COMM_WORLD);
    }
}

/* Sweeps the sizes with `step`; rank 0 prints a row per size. For latency the value is the
 * one-way time in microseconds, for bw the rate in MB/s (1e6 bytes per second). */
static void run_p2p(const struct test *t, const struct opts *o, int is_bw)
{
    char *buf = xalloc(o->max_size);
    p2p_step step = is_bw ? window : ping_pong;
    int peer = 1 - g_rank;
    if (g_rank == 0)
        printf(is_bw ? "# Size      Bandwidth (MB/s)\n" : "# Size          Latency (us)\n");
    for (size_t size = o->min_size; size <= o->max_size; size = next_size(size)) {
        int iters = scaled_iters(size, o->iters, t->iter_floor);
        int warm = warmup_for(o, iters);
        double t0 = 0.0;
        MPI_Barrier(MPI_COMM_WORLD);
        for (int i = 0; i < warm + iters; i++) {
            if (i == warm)
                t0 = MPI_Wtime();
            step(buf, size, peer);
        }
        double el = MPI_Wtime() - t0;
        if (g_rank == 0) {
            double value = is_bw ? (double)size * BW_WINDOW * iters / 1e6 / el
                                 : el * 1e6 / (2.0 * iters);
            printf("%-10zu%18.2f\n", size, value);
            fflush(stdout);
        }
    }
    free(buf);
}

static void report(const struct opts *o, size_t size, double lat_us, int iters)
{
    double sum = 0, mn = 0, mx = 0;
    MPI_Reduce(&lat_us, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&lat_us, &mn, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
    MPI_Reduce(&lat_us, &mx, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (g_rank != 0)
        return;
    if (o->full)
        printf("%-10zu%18.2f%18.2f%18.2f%12d\n", size, sum / g_size, mn, mx, iters);
    else
        printf("%-10zu%18.2f\n", size, sum / g_size);
    fflush(stdout);
}

static void print_coll_header(const struct opts *o)
{
    if (g_rank != 0)
        return;
    if (o->full)
        printf("# Size       Avg Latency(us)   Min Latency(us)   Max Latency(us)  Iterations\n");
    else
        printf("# Size       Avg Latency(us)\n");
}

static void run_barrier(const struct test *t, const struct opts *o)
{
    (void)t;
    int iters = o->iters;
    int warm = warmup_for(o, iters);
    print_coll_header(o);
    double t0 = 0.0;
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < warm + iters; i++) {
        if (i == warm)
            t0 = MPI_Wtime();
        MPI_Barrier(MPI_COMM_WORLD);
    }
    double lat = (MPI_Wtime() - t0) * 1e6 / iters;
    report(o, 0, lat, iters);
}

static void run_coll(const struct test *t, const struct opts *o)
{
    size_t sb = o->max_size * (t->send_mult ? (size_t)g_size : 1);
    size_t rb = o->max_size * (t->recv_mult ? (size_t)g_size : 1);
    if (sb < 8)
        sb = 8;
    if (rb < 8)
        rb = 8;
    /* reduce_scatter rounds the per-rank block up to one double */
    if (sb < (size_t)g_size * 8)
        sb = (size_t)g_size * 8;
    char *s = xalloc(sb);
    char *r = xalloc(rb);
    /* reductions should add ordinary doubles, not whatever the byte fill pattern spells */
    for (size_t i = 0; i < sb / 8; i++)
        ((double *)s)[i] = (double)(g_rank + 1);
    print_coll_header(o);
    for (size_t size = o->min_size; size <= o->max_size; size = next_size(size)) {
        if (size == 0)
            continue;
        int iters = scaled_iters(size, o->iters, t->iter_floor);
        int warm = warmup_for(o, iters);
        double total = 0.0;
        MPI_Barrier(MPI_COMM_WORLD);
        for (int i = 0; i < warm + iters; i++) {
            double t0 = MPI_Wtime();
            t->run(t, size, s, r, g_size);
            double el = MPI_Wtime() - t0;
            if (i >= warm)
                total += el;
            MPI_Barrier(MPI_COMM_WORLD);
        }
        report(o, size, total * 1e6 / iters, iters);
    }
    free(s);
    free(r);
}

static size_t parse_size(const char *s, const char *what)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        if (g_rank == 0)
            fprintf(stderr, "ompi_bench: bad %s '%s' (want a byte count)\n", what, s);
        MPI_Finalize();
        exit(2);
    }
    return (size_t)v;
}

static void usage_exit(const char *msg)
{
    if (g_rank == 0) {
        if (msg)
            fprintf(stderr, "ompi_bench: %s\n", msg);
        fprintf(stderr, "usage: ompi_bench TEST [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]\n"
                        "TEST: latency bw bcast reduce allreduce gather scatter barrier\n"
                        "      allgather alltoall reduce_scatter scan\n");
    }
    MPI_Finalize();
    exit(2);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);

    if (argc < 2)
        usage_exit("missing TEST");
    const struct test *t = NULL;
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++)
        if (strcmp(argv[1], TESTS[i].name) == 0)
            t = &TESTS[i];
    if (!t)
        usage_exit("unknown TEST");

    struct opts o = {t->default_min, 16u << 20, t->default_iters, -1, 0};
    for (int a = 2; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "-f") == 0) {
            o.full = 1;
        } else if ((strcmp(arg, "-m") == 0 || strcmp(arg, "-i") == 0 || strcmp(arg, "-x") == 0)) {
            if (a + 1 >= argc)
                usage_exit("option needs a value");
            const char *v = argv[++a];
            if (arg[1] == 'm') {
                char buf[64];
                snprintf(buf, sizeof buf, "%s", v);
                char *colon = strchr(buf, ':');
                if (colon) {
                    *colon = '\0';
                    if (buf[0])
                        o.min_size = parse_size(buf, "minimum size");
                    if (colon[1])
                        o.max_size = parse_size(colon + 1, "maximum size");
                } else {
                    o.max_size = parse_size(buf, "maximum size");
                }
            } else if (arg[1] == 'i') {
                o.iters = (int)parse_size(v, "iteration count");
                if (o.iters < 1)
                    usage_exit("-i must be at least 1");
            } else {
                o.warmup = (int)parse_size(v, "warm-up count");
            }
        } else {
            usage_exit("unknown option");
        }
    }
    if (o.min_size > o.max_size)
        usage_exit("MIN is larger than MAX");
    if (t->kind == K_P2P && g_size != 2)
        usage_exit("latency and bw need exactly 2 ranks");
    if (t->kind == K_COLL && o.max_size > (size_t)0x7fffffff / (size_t)g_size)
        usage_exit("MAX too large for this many ranks");

    if (g_rank == 0) {
        printf("# ompi_bench %s (%d ranks)\n", t->title, g_size);
        fflush(stdout);
    }
    if (t->kind == K_P2P)
        run_p2p(t, &o, strcmp(t->name, "bw") == 0);
    else if (t->kind == K_BARRIER)
        run_barrier(t, &o);
    else
        run_coll(t, &o);

    MPI_Finalize();
    return 0;
}
