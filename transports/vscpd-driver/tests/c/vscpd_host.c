/*
 * A stand-in for the VSCP daemon's device thread (vscp master devicethread.cpp): it loads a
 * Level II driver the way vscpd does (dlopen RTLD_LAZY, dlsym of the five functions, abort
 * on a missing one), and is then driven line by line over stdin by the Rust integration test
 * (tests/driver.rs). Every reply is one line on stdout.
 *
 *   usage: vscpd_host /path/to/libvscpl2drv-websocksrv.so
 *
 * Commands (numbers in decimal unless noted):
 *   OPEN <guid32hex|-|0> <config...>   VSCPOpen(config, guid)        -> OPEN handle=<h>
 *                                      ('-' = NULL guid pointer, '0' = all-zero GUID;
 *                                       the rest of the line is passed verbatim)
 *   CLOSE <h>                          VSCPClose                     -> CLOSE rc=<n>
 *   READ <h> <timeout>                 VSCPRead, then free(pdata)    -> READ rc=<n> ms=<t> [event]
 *   READLEAK <h> <timeout>             the same without free(): vscpd's own habit, used to
 *                                      prove the leak checker sees the driver's buffers
 *   WRITE <h> <timeout> <head> <class> <type> <obid> <timestamp> <year> <month> <day>
 *         <hour> <minute> <second> <guid32hex> <datahex|->
 *                                      VSCPWrite; the data buffer is then overwritten and
 *                                      freed, so only a deep copy survives -> WRITE rc=<n> ms=<t>
 *   WRITENULL <h> | WRITEBIG <h> | WRITENOBUF <h> | READNULL <h>
 *                                      the bad calls                 -> <CMD> rc=<n>
 *   PUMP <h>                           starts vscpd's loop in a thread: VSCPRead(h, &ev, 50)
 *                                      until UNPUMP; each event      -> PUMPED [event]
 *   UNPUMP                             stops and joins it            -> UNPUMP n=<events>
 *   THREADS                            threads in this process       -> THREADS n=<n> names=<a,b>
 *   QUIT                               dlclose, exit 0               -> BYE
 *
 * [event] is: head= class= type= obid= crc= year= month= day= hour= minute= second=
 *             timestamp= guid=<32 hex> size= data=<hex|->
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* vscp.h (vscp 72968b7), the 15.x layout. */
typedef struct {
    uint16_t crc;
    uint32_t obid;
    uint16_t year;
    uint8_t month;
    uint8_t day;
    uint8_t hour;
    uint8_t minute;
    uint8_t second;
    uint32_t timestamp;
    uint16_t head;
    uint16_t vscp_class;
    uint16_t vscp_type;
    uint8_t GUID[16];
    uint16_t sizeData;
    uint8_t *pdata;
} vscpEvent;

typedef struct {
    uint16_t crc;
    uint32_t obid;
    uint16_t year;
    uint8_t month;
    uint8_t day;
    uint8_t hour;
    uint8_t minute;
    uint8_t second;
    uint32_t timestamp;
    uint16_t head;
    uint16_t vscp_class;
    uint16_t vscp_type;
    uint8_t GUID[16];
    uint16_t sizeData;
    uint8_t data[512];
} vscpEventEx;

typedef struct {
    uint8_t filter_priority;
    uint8_t mask_priority;
    uint16_t filter_class;
    uint16_t mask_class;
    uint16_t filter_type;
    uint16_t mask_type;
    uint8_t filter_GUID[16];
    uint8_t mask_GUID[16];
} vscpEventFilter;

/* level2drvdef.h (Linux: default calling convention). */
typedef long (*LPFNDLL_VSCPOPEN)(const char *pPathConfig, const unsigned char *pguid);
typedef int (*LPFNDLL_VSCPCLOSE)(long handle);
typedef int (*LPFNDLL_VSCPWRITE)(long handle, const vscpEvent *pEvent, unsigned long timeout);
typedef int (*LPFNDLL_VSCPREAD)(long handle, vscpEvent *pEvent, unsigned long timeout);
typedef unsigned long (*LPFNDLL_VSCPGETVERSION)(void);
typedef const char *(*LPFNDLL_VSCPGETVENDORSTRING)(void);

static LPFNDLL_VSCPOPEN VSCPOpen;
static LPFNDLL_VSCPCLOSE VSCPClose;
static LPFNDLL_VSCPWRITE VSCPWrite;
static LPFNDLL_VSCPREAD VSCPRead;
static LPFNDLL_VSCPGETVERSION VSCPGetVersion;
static LPFNDLL_VSCPGETVENDORSTRING VSCPGetVendorString;

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* One whole line per call, flushed: the pump thread prints concurrently with the main one. */
static void say(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&out_lock);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Formats an event into buf (at least 2048 bytes). */
static void format_event(char *buf, size_t len, const vscpEvent *ev)
{
    int n = snprintf(buf, len,
                     "head=%u class=%u type=%u obid=%u crc=%u year=%u month=%u day=%u hour=%u "
                     "minute=%u second=%u timestamp=%u guid=",
                     ev->head, ev->vscp_class, ev->vscp_type, ev->obid, ev->crc, ev->year,
                     ev->month, ev->day, ev->hour, ev->minute, ev->second, ev->timestamp);
    for (int i = 0; i < 16; i++)
        n += snprintf(buf + n, len - (size_t)n, "%02X", ev->GUID[i]);
    n += snprintf(buf + n, len - (size_t)n, " size=%u data=", ev->sizeData);
    if (ev->sizeData == 0 || ev->pdata == NULL) {
        snprintf(buf + n, len - (size_t)n, "-%s",
                 (ev->sizeData != 0) ? "(NULL-with-size)" : (ev->pdata ? "(buffer-without-size)" : ""));
        return;
    }
    for (unsigned i = 0; i < ev->sizeData && (size_t)n + 3 < len; i++)
        n += snprintf(buf + n, len - (size_t)n, "%02X", ev->pdata[i]);
}

static int parse_hex(const char *s, uint8_t *out, size_t max)
{
    size_t len = strlen(s);
    if (len % 2 != 0 || len / 2 > max)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return (int)(len / 2);
}

/* Counts this process's threads and lists their names (comm) into names. */
static int count_threads(char *names, size_t len)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    size_t used = 0;
    struct dirent *e;
    names[0] = '\0';
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        n++;
        char path[300], comm[64] = "?";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(comm, sizeof comm, f) == NULL)
                strcpy(comm, "?");
            fclose(f);
        }
        comm[strcspn(comm, "\n ")] = '\0';
        if (used + strlen(comm) + 2 < len)
            used += (size_t)snprintf(names + used, len - used, "%s%s", used ? "," : "", comm);
    }
    closedir(d);
    return n;
}

/* vscpd's device thread loop (devicethread.cpp): read with 50 ms until told to stop. */
static volatile int pump_stop;
static long pump_handle;
static long pump_count;

static void *pump(void *arg)
{
    (void)arg;
    char line[2048];
    while (!__atomic_load_n(&pump_stop, __ATOMIC_ACQUIRE)) {
        vscpEvent ev;
        memset(&ev, 0, sizeof ev); /* vscpd zeroes it */
        int rc = VSCPRead(pump_handle, &ev, 50);
        if (rc == 0) {
            format_event(line, sizeof line, &ev);
            say("PUMPED %s", line);
            pump_count++;
            /* The buffer is ours (malloc'ed by the driver). vscpd leaks it; we free it so a
             * leak checker sees only the driver's own leaks. */
            free(ev.pdata);
        } else if (rc != 32) {
            /* Not a timeout: report it, and do not spin on a closed handle. */
            say("PUMPERR rc=%d", rc);
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    return NULL;
}

static void *must_sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (p == NULL) {
        /* vscpd refuses the driver if any of the five is missing. */
        say("ERROR missing symbol %s: %s", name, dlerror());
        exit(3);
    }
    return p;
}

#define OFF(type, field) (unsigned)offsetof(type, field)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <driver.so>\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_LAZY);
    if (lib == NULL) {
        say("ERROR dlopen: %s", dlerror());
        return 2;
    }
    VSCPOpen = (LPFNDLL_VSCPOPEN)must_sym(lib, "VSCPOpen");
    VSCPClose = (LPFNDLL_VSCPCLOSE)must_sym(lib, "VSCPClose");
    VSCPWrite = (LPFNDLL_VSCPWRITE)must_sym(lib, "VSCPWrite");
    VSCPRead = (LPFNDLL_VSCPREAD)must_sym(lib, "VSCPRead");
    VSCPGetVersion = (LPFNDLL_VSCPGETVERSION)must_sym(lib, "VSCPGetVersion");
    /* Optional for vscpd; VSCP Works-style tools use it. */
    VSCPGetVendorString = (LPFNDLL_VSCPGETVENDORSTRING)dlsym(lib, "VSCPGetVendorString");

    say("LAYOUT vscpEvent size=%u align=%u crc=%u obid=%u year=%u month=%u day=%u hour=%u "
        "minute=%u second=%u timestamp=%u head=%u vscp_class=%u vscp_type=%u GUID=%u sizeData=%u "
        "pdata=%u",
        (unsigned)sizeof(vscpEvent), (unsigned)_Alignof(vscpEvent), OFF(vscpEvent, crc),
        OFF(vscpEvent, obid), OFF(vscpEvent, year), OFF(vscpEvent, month), OFF(vscpEvent, day),
        OFF(vscpEvent, hour), OFF(vscpEvent, minute), OFF(vscpEvent, second),
        OFF(vscpEvent, timestamp), OFF(vscpEvent, head), OFF(vscpEvent, vscp_class),
        OFF(vscpEvent, vscp_type), OFF(vscpEvent, GUID), OFF(vscpEvent, sizeData),
        OFF(vscpEvent, pdata));
    say("LAYOUT vscpEventEx size=%u align=%u sizeData=%u data=%u", (unsigned)sizeof(vscpEventEx),
        (unsigned)_Alignof(vscpEventEx), OFF(vscpEventEx, sizeData), OFF(vscpEventEx, data));
    say("LAYOUT vscpEventFilter size=%u align=%u filter_priority=%u mask_priority=%u "
        "filter_class=%u mask_class=%u filter_type=%u mask_type=%u filter_GUID=%u mask_GUID=%u",
        (unsigned)sizeof(vscpEventFilter), (unsigned)_Alignof(vscpEventFilter),
        OFF(vscpEventFilter, filter_priority), OFF(vscpEventFilter, mask_priority),
        OFF(vscpEventFilter, filter_class), OFF(vscpEventFilter, mask_class),
        OFF(vscpEventFilter, filter_type), OFF(vscpEventFilter, mask_type),
        OFF(vscpEventFilter, filter_GUID), OFF(vscpEventFilter, mask_GUID));
    char out[2048];
    say("VERSION 0x%08lX", VSCPGetVersion());
    say("VENDOR %s", VSCPGetVendorString ? VSCPGetVendorString() : "(none)");
    say("THREADS n=%d names=%s", count_threads(out, sizeof out), out);
    say("READY");

    char line[8192];
    pthread_t pump_thread;
    int pumping = 0;
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char cmd[16] = {0};
        int used = 0;
        if (sscanf(line, "%15s %n", cmd, &used) < 1)
            continue;
        const char *rest = line + used;

        if (strcmp(cmd, "OPEN") == 0) {
            char guidarg[40] = {0};
            int used2 = 0;
            uint8_t guid[16] = {0};
            const unsigned char *pguid = NULL;
            if (sscanf(rest, "%39s %n", guidarg, &used2) < 1) {
                say("OPEN error=syntax");
                continue;
            }
            if (strcmp(guidarg, "0") == 0) {
                pguid = guid;
            } else if (strcmp(guidarg, "-") != 0) {
                if (parse_hex(guidarg, guid, 16) != 16) {
                    say("OPEN error=guid");
                    continue;
                }
                pguid = guid;
            }
            /* A heap copy, freed right after: the driver must not keep the pointer. */
            char *config = strdup(rest + used2);
            if (config == NULL) {
                say("OPEN error=memory");
                continue;
            }
            long h = VSCPOpen(config, pguid);
            memset(config, 'X', strlen(config));
            free(config);
            say("OPEN handle=%ld", h);
        } else if (strcmp(cmd, "CLOSE") == 0) {
            long h = strtol(rest, NULL, 10);
            long t = now_ms();
            int rc = VSCPClose(h);
            say("CLOSE rc=%d ms=%ld", rc, now_ms() - t);
        } else if (strcmp(cmd, "READ") == 0 || strcmp(cmd, "READLEAK") == 0) {
            long h = 0;
            unsigned long timeout = 0;
            if (sscanf(rest, "%ld %lu", &h, &timeout) != 2) {
                say("%s error=syntax", cmd);
                continue;
            }
            vscpEvent ev;
            memset(&ev, 0, sizeof ev);
            long t = now_ms();
            int rc = VSCPRead(h, &ev, timeout);
            long ms = now_ms() - t;
            if (rc == 0) {
                format_event(out, sizeof out, &ev);
                say("%s rc=0 ms=%ld %s", cmd, ms, out);
                if (strcmp(cmd, "READ") == 0)
                    free(ev.pdata);
            } else {
                say("%s rc=%d ms=%ld", cmd, rc, ms);
            }
        } else if (strcmp(cmd, "WRITE") == 0) {
            long h;
            unsigned long timeout;
            unsigned head, cls, type, obid, ts, year, month, day, hour, minute, second;
            char guidhex[40], datahex[1100];
            if (sscanf(rest, "%ld %lu %u %u %u %u %u %u %u %u %u %u %u %39s %1099s", &h, &timeout,
                       &head, &cls, &type, &obid, &ts, &year, &month, &day, &hour, &minute,
                       &second, guidhex, datahex) != 15) {
                say("WRITE error=syntax");
                continue;
            }
            vscpEvent *ev = calloc(1, sizeof *ev);
            if (ev == NULL) {
                say("WRITE error=memory");
                continue;
            }
            ev->head = (uint16_t)head;
            ev->vscp_class = (uint16_t)cls;
            ev->vscp_type = (uint16_t)type;
            ev->obid = obid;
            ev->timestamp = ts;
            ev->year = (uint16_t)year;
            ev->month = (uint8_t)month;
            ev->day = (uint8_t)day;
            ev->hour = (uint8_t)hour;
            ev->minute = (uint8_t)minute;
            ev->second = (uint8_t)second;
            if (parse_hex(guidhex, ev->GUID, 16) != 16) {
                say("WRITE error=guid");
                free(ev);
                continue;
            }
            if (strcmp(datahex, "-") != 0) {
                ev->pdata = malloc(512);
                if (ev->pdata == NULL) {
                    say("WRITE error=memory");
                    free(ev);
                    continue;
                }
                int n = parse_hex(datahex, ev->pdata, 512);
                if (n < 0) {
                    say("WRITE error=data");
                    free(ev->pdata);
                    free(ev);
                    continue;
                }
                ev->sizeData = (uint16_t)n;
            }
            long t = now_ms();
            int rc = VSCPWrite(h, ev, timeout);
            long ms = now_ms() - t;
            /* The event is the host's again: scribble over it and free it. */
            if (ev->pdata) {
                memset(ev->pdata, 0xEE, 512);
                free(ev->pdata);
            }
            memset(ev, 0xEE, sizeof *ev);
            free(ev);
            say("WRITE rc=%d ms=%ld", rc, ms);
        } else if (strcmp(cmd, "WRITENULL") == 0) {
            say("WRITENULL rc=%d", VSCPWrite(strtol(rest, NULL, 10), NULL, 0));
        } else if (strcmp(cmd, "WRITEBIG") == 0) {
            vscpEvent ev;
            memset(&ev, 0, sizeof ev);
            /* Over-allocated on purpose: only the size is wrong, not the buffer. */
            uint8_t *data = calloc(1, 1024);
            ev.sizeData = 513;
            ev.pdata = data;
            say("WRITEBIG rc=%d", VSCPWrite(strtol(rest, NULL, 10), &ev, 0));
            free(data);
        } else if (strcmp(cmd, "WRITENOBUF") == 0) {
            vscpEvent ev;
            memset(&ev, 0, sizeof ev);
            ev.sizeData = 4;
            say("WRITENOBUF rc=%d", VSCPWrite(strtol(rest, NULL, 10), &ev, 0));
        } else if (strcmp(cmd, "READNULL") == 0) {
            say("READNULL rc=%d", VSCPRead(strtol(rest, NULL, 10), NULL, 0));
        } else if (strcmp(cmd, "PUMP") == 0) {
            if (pumping) {
                say("PUMP error=already");
                continue;
            }
            pump_handle = strtol(rest, NULL, 10);
            pump_count = 0;
            __atomic_store_n(&pump_stop, 0, __ATOMIC_RELEASE);
            if (pthread_create(&pump_thread, NULL, pump, NULL) != 0) {
                say("PUMP error=thread");
                continue;
            }
            pumping = 1;
            say("PUMP ok");
        } else if (strcmp(cmd, "UNPUMP") == 0) {
            if (pumping) {
                __atomic_store_n(&pump_stop, 1, __ATOMIC_RELEASE);
                pthread_join(pump_thread, NULL);
                pumping = 0;
            }
            say("UNPUMP n=%ld", pump_count);
        } else if (strcmp(cmd, "THREADS") == 0) {
            say("THREADS n=%d names=%s", count_threads(out, sizeof out), out);
        } else if (strcmp(cmd, "QUIT") == 0) {
            break;
        } else {
            say("ERROR unknown command %s", cmd);
        }
    }
    if (pumping) {
        __atomic_store_n(&pump_stop, 1, __ATOMIC_RELEASE);
        pthread_join(pump_thread, NULL);
    }
    /* vscpd: VSCPClose, then dlclose. */
    if (dlclose(lib) != 0)
        say("ERROR dlclose: %s", dlerror());
    say("BYE");
    return 0;
}
