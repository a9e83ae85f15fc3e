/* idle_conns: opens N idle HTTP/2 (h2c, prior knowledge) connections to a
 * server and holds them, so that the server's memory per idle connection can
 * be measured (bench/http.sh).
 *
 * Each connection sends the client connection preface and an empty SETTINGS
 * frame, then reads until the server has sent its own SETTINGS (which it must
 * do first on a new connection) and acknowledged ours. That makes sure the
 * server has set the connection up completely, HTTP/2 session included,
 * before "established" is printed. After that the connections stay idle:
 * only SETTINGS and PING are answered, as RFC 9113 requires. The program exits
 * on SIGTERM or SIGINT, or (with -w) when stdin reaches end of file.
 *
 * Plain C and POSIX: it links nothing of lmdm's. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { FRAME_HEADER = 9, TYPE_SETTINGS = 0x4, TYPE_PING = 0x6, TYPE_GOAWAY = 0x7, FLAG_ACK = 0x1 };

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static const unsigned char settings_empty[FRAME_HEADER] = {0, 0, 0, TYPE_SETTINGS, 0, 0, 0, 0, 0};
static const unsigned char settings_ack[FRAME_HEADER] = {0, 0, 0, TYPE_SETTINGS, FLAG_ACK, 0, 0, 0, 0};

typedef enum { C_CONNECTING, C_HANDSHAKE, C_IDLE, C_CLOSED } cstate_t;

/* Frames are parsed as a byte stream so that a connection needs no frame-sized
 * buffer: the 9-byte header is collected, then the payload is skipped (or, for
 * PING, its 8 bytes kept for the reply). */
typedef struct {
    int fd;
    cstate_t state;
    int got_settings;    /* the server's SETTINGS arrived */
    int got_ack;         /* the server acknowledged ours */
    unsigned char hdr[FRAME_HEADER];
    size_t hdr_len;
    uint32_t payload_left;
    unsigned char frame_type, frame_flags;
    unsigned char ping[8];
    size_t ping_len;
    unsigned char out[256]; /* unsent bytes (replies are tiny; a flood closes the connection) */
    size_t out_len;
} conn_t;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static void usage(FILE *out)
{
    fprintf(out,
            "usage: idle_conns [-n N] [-t SECONDS] [-w] HOST PORT\n"
            "\n"
            "Opens N (default 1000) HTTP/2 prior-knowledge connections to HOST:PORT,\n"
            "exchanges SETTINGS on each, prints \"established N ...\" on stdout once all\n"
            "are set up, and holds them idle until SIGTERM/SIGINT (or, with -w, until\n"
            "stdin reaches end of file). -t: seconds allowed to establish them all\n"
            "(default 30). Exit status: 0 after a clean hold, 1 on any error.\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One more descriptor per connection than the soft limit usually allows. */
static int raise_nofile(long need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur >= need) return 0;
    if (rl.rlim_max != RLIM_INFINITY && (long)rl.rlim_max < need) {
        fprintf(stderr, "idle_conns: need %ld open files but the hard limit is %ld (raise it: ulimit -Hn)\n",
                need, (long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = (rlim_t)need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("idle_conns: setrlimit(RLIMIT_NOFILE)");
        return -1;
    }
    return 0;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = C_CLOSED;
}

static int queue_out(conn_t *c, const void *data, size_t len)
{
    if (c->out_len + len > sizeof(c->out)) return -1;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

/* Returns -1 on a write error. */
static int flush_out(conn_t *c)
{
    while (c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            if (errno == EINTR) continue;
            return -1;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    return 0;
}

/* A complete frame header or payload byte arrived; act on finished frames.
 * Returns -1 if the connection must be dropped (GOAWAY, reply overflow). */
static int frame_done(conn_t *c)
{
    if (c->frame_type == TYPE_SETTINGS) {
        if (c->frame_flags & FLAG_ACK) {
            c->got_ack = 1;
        } else {
            c->got_settings = 1;
            if (queue_out(c, settings_ack, sizeof(settings_ack)) != 0) return -1;
        }
    } else if (c->frame_type == TYPE_PING && !(c->frame_flags & FLAG_ACK) && c->ping_len == 8) {
        unsigned char reply[FRAME_HEADER + 8] = {0, 0, 8, TYPE_PING, FLAG_ACK, 0, 0, 0, 0};
        memcpy(reply + FRAME_HEADER, c->ping, 8);
        if (queue_out(c, reply, sizeof(reply)) != 0) return -1;
    } else if (c->frame_type == TYPE_GOAWAY) {
        return -1;
    }
    return 0;
}

static int feed(conn_t *c, const unsigned char *p, size_t len)
{
    while (len > 0) {
        if (c->hdr_len < FRAME_HEADER) {
            size_t take = FRAME_HEADER - c->hdr_len;
            if (take > len) take = len;
            memcpy(c->hdr + c->hdr_len, p, take);
            c->hdr_len += take;
            p += take;
            len -= take;
            if (c->hdr_len < FRAME_HEADER) break;
            c->payload_left = (uint32_t)c->hdr[0] << 16 | (uint32_t)c->hdr[1] << 8 | c->hdr[2];
            c->frame_type = c->hdr[3];
            c->frame_flags = c->hdr[4];
            c->ping_len = 0;
        }
        size_t take = c->payload_left < len ? c->payload_left : len;
        if (c->frame_type == TYPE_PING && c->ping_len + take <= sizeof(c->ping)) {
            memcpy(c->ping + c->ping_len, p, take);
            c->ping_len += take;
        }
        c->payload_left -= (uint32_t)take;
        p += take;
        len -= take;
        if (c->payload_left == 0) {
            c->hdr_len = 0;
            if (frame_done(c) != 0) return -1;
        }
    }
    return 0;
}

/* Reads what is available. Returns -1 on EOF or error (reason in *why). */
static int read_conn(conn_t *c, const char **why)
{
    unsigned char buf[16384];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (feed(c, buf, (size_t)n) != 0) {
                *why = "server sent GOAWAY (or flooded the connection)";
                return -1;
            }
            continue;
        }
        if (n == 0) {
            *why = "closed by the server";
            return -1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        if (errno == EINTR) continue;
        *why = strerror(errno);
        return -1;
    }
}

int main(int argc, char **argv)
{
    long n = 1000;
    double timeout = 30;
    int watch_stdin = 0;
    int ch;
    while ((ch = getopt(argc, argv, "n:t:wh")) != -1) {
        char *end;
        switch (ch) {
        case 'n':
            n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 1000000) {
                fprintf(stderr, "idle_conns: -n wants 1..1000000, not '%s'\n", optarg);
                return 1;
            }
            break;
        case 't':
            timeout = strtod(optarg, &end);
            if (*end || !(timeout > 0)) {
                fprintf(stderr, "idle_conns: -t wants a positive number of seconds, not '%s'\n", optarg);
                return 1;
            }
            break;
        case 'w': watch_stdin = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 1;
    }
    const char *host = argv[optind], *port = argv[optind + 1];

    if (raise_nofile(n + 16) != 0) return 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "idle_conns: %s:%s: %s\n", host, port, gai_strerror(gai));
        return 1;
    }

    int status = 1;
    conn_t *conns = calloc((size_t)n, sizeof(*conns));
    struct pollfd *pfds = calloc((size_t)n + 1, sizeof(*pfds));
    if (!conns || !pfds) {
        fprintf(stderr, "idle_conns: out of memory\n");
        goto out;
    }
    for (long i = 0; i < n; i++) conns[i].fd = -1;

    /* Start every connect at once; the handshakes then proceed in parallel. */
    for (long i = 0; i < n; i++) {
        conn_t *c = &conns[i];
        c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (c->fd < 0) {
            fprintf(stderr, "idle_conns: socket: %s (connection %ld)\n", strerror(errno), i + 1);
            goto out;
        }
        if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            fprintf(stderr, "idle_conns: connect to %s:%s: %s (connection %ld)\n", host, port, strerror(errno),
                    i + 1);
            goto out;
        }
        c->state = C_CONNECTING;
        if (queue_out(c, preface, sizeof(preface) - 1) != 0 ||
            queue_out(c, settings_empty, sizeof(settings_empty)) != 0)
            goto out;
    }

    long established = 0, open_conns = n;
    int announced = 0;
    double deadline = now_s() + timeout;
    while (!stop_signal) {
        nfds_t nf = 0;
        for (long i = 0; i < n; i++) {
            conn_t *c = &conns[i];
            if (c->state == C_CLOSED) continue;
            pfds[nf].fd = c->fd;
            pfds[nf].events = (short)(POLLIN | (c->state == C_CONNECTING || c->out_len ? POLLOUT : 0));
            pfds[nf].revents = 0;
            nf++;
        }
        if (watch_stdin) {
            pfds[nf].fd = STDIN_FILENO;
            pfds[nf].events = POLLIN;
            pfds[nf].revents = 0;
            nf++;
        }
        int wait_ms = -1;
        if (!announced) {
            double left = deadline - now_s();
            if (left <= 0) {
                fprintf(stderr, "idle_conns: only %ld of %ld connections established within %g s\n",
                        established, n, timeout);
                goto out;
            }
            wait_ms = (int)(left * 1000) + 1;
        }
        int rv = poll(pfds, nf, wait_ms);
        if (rv < 0) {
            if (errno == EINTR) continue;
            perror("idle_conns: poll");
            goto out;
        }
        nfds_t k = 0;
        for (long i = 0; i < n && k < nf; i++) {
            conn_t *c = &conns[i];
            if (c->state == C_CLOSED) continue;
            short re = pfds[k++].revents;
            if (!re) continue;
            const char *why = NULL;
            if (c->state == C_CONNECTING && (re & (POLLOUT | POLLERR | POLLHUP))) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    why = strerror(err);
                } else {
                    c->state = C_HANDSHAKE;
                }
            }
            if (!why && c->state != C_CONNECTING && (re & (POLLIN | POLLHUP | POLLERR))) (void)read_conn(c, &why);
            if (!why && c->state != C_CONNECTING && flush_out(c) != 0) why = strerror(errno);
            if (!why && c->state == C_HANDSHAKE && c->got_settings && c->got_ack) {
                c->state = C_IDLE;
                established++;
            }
            if (why) {
                int was_idle = c->state == C_IDLE;
                conn_close(c);
                open_conns--;
                if (!announced) {
                    fprintf(stderr, "idle_conns: connection %ld to %s:%s failed: %s\n", i + 1, host, port, why);
                    goto out;
                }
                fprintf(stderr, "idle_conns: connection %ld %s (%ld still open)\n", i + 1, why, open_conns);
                if (was_idle) established--;
            }
        }
        if (watch_stdin && k < nf && pfds[k].revents) {
            char b[256];
            ssize_t r = read(STDIN_FILENO, b, sizeof(b));
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) break; /* stdin closed */
        }
        if (!announced && established == n) {
            printf("established %ld HTTP/2 connections to %s:%s; holding them idle until SIGTERM%s\n", n, host,
                   port, watch_stdin ? " or end of stdin" : "");
            fflush(stdout);
            announced = 1;
        }
        if (announced && open_conns == 0) {
            fprintf(stderr, "idle_conns: every connection was closed by the server\n");
            goto out;
        }
    }
    status = 0;
out:
    if (conns)
        for (long i = 0; i < n; i++) conn_close(&conns[i]);
    free(conns);
    free(pfds);
    freeaddrinfo(ai);
    return status;
}
