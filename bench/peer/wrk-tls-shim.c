/* wrk-tls-shim.c — an LD_PRELOAD library that makes wrk 4.x's TLS connects fit a 2-core
 * benchmark. compare.sh builds it with `cc -shared -fPIC -O2 -o shim.so wrk-tls-shim.c -ldl`
 * (no OpenSSL headers: the few OpenSSL calls are declared below).
 *
 * 1. No busy loop during handshakes. wrk registers a new connection for both readable and
 *    writable events, and while SSL_connect waits for the server's flight the socket stays
 *    writable: wrk's thread spins on SSL_connect -> WANT_READ and takes the core the server
 *    under test needs. After a WANT_READ we narrow the fd's epoll interest to EPOLLIN; wrk's
 *    event loop restores its own mask at its next epoll_ctl for that fd.
 * 2. WRK_NO_RESUME=1: wrk keeps the TLS session across reconnects (SSL_clear keeps it), so
 *    new connections resume. With the variable set, the session is dropped before each
 *    handshake starts, and every connection pays a full handshake. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
extern int SSL_in_before(const SSL *ssl);
extern int SSL_set_session(SSL *ssl, SSL_SESSION *session);
extern int SSL_get_error(const SSL *ssl, int ret);
extern int SSL_get_fd(const SSL *ssl);

enum { OPENSSL_WANT_READ = 2, OPENSSL_WANT_WRITE = 3 };

static int (*next_epoll_wait)(int, struct epoll_event *, int, int);
static int (*next_ssl_connect)(SSL *);
static int drop_sessions;
static __thread int thread_epoll_fd = -1; /* wrk runs one event loop per thread */

__attribute__((constructor)) static void shim_init(void) {
    next_epoll_wait = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
    next_ssl_connect = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
    const char *v = getenv("WRK_NO_RESUME");
    drop_sessions = v != NULL && strcmp(v, "1") == 0;
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
    thread_epoll_fd = epfd;
    return next_epoll_wait(epfd, events, maxevents, timeout);
}

static void wait_only_for(SSL *ssl, int want) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = want == OPENSSL_WANT_READ ? EPOLLIN : (EPOLLIN | EPOLLOUT);
    ev.data.fd = SSL_get_fd(ssl);
    epoll_ctl(thread_epoll_fd, EPOLL_CTL_MOD, ev.data.fd, &ev);
}

int SSL_connect(SSL *ssl) {
    if (next_ssl_connect == NULL) shim_init();
    if (drop_sessions && SSL_in_before(ssl)) SSL_set_session(ssl, NULL);
    int ret = next_ssl_connect(ssl);
    if (ret != 1 && thread_epoll_fd >= 0) {
        int err = SSL_get_error(ssl, ret);
        if (err == OPENSSL_WANT_READ || err == OPENSSL_WANT_WRITE) wait_only_for(ssl, err);
    }
    return ret;
}
