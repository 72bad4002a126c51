/* Clocks, sleeping and randomness, which panda exec makes deterministic: prints the
 * realtime clock's date, whether the monotonic clock advances across a 1.5 s nanosleep,
 * time() and gettimeofday(), and bytes from getrandom. On i386, glibc uses the *_time64
 * calls. */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <sys/time.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sched.h>

int main(void) {
    struct timespec now, before, after, res;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    printf("realtime %04d-%02d-%02d\n", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    clock_getres(CLOCK_MONOTONIC, &res);
    printf("resolution %ld ns\n", (long)res.tv_nsec);
    clock_gettime(CLOCK_MONOTONIC, &before);
    struct timespec nap = {1, 500000000};
    nanosleep(&nap, 0);
    clock_gettime(CLOCK_MONOTONIC, &after);
    double slept = (after.tv_sec - before.tv_sec) + (after.tv_nsec - before.tv_nsec) / 1e9;
    printf("slept at least 1.5 s: %d\n", slept >= 1.5);
    time_t t = time(0);
    struct timeval tv;
    gettimeofday(&tv, 0);
    printf("time and gettimeofday agree: %d\n", tv.tv_sec - t <= 1 && t >= now.tv_sec);
    unsigned char bytes[8];
    long got = getrandom(bytes, sizeof bytes, 0);
    printf("getrandom %ld:", got);
    for (int i = 0; i < 8; i++)
        printf(" %02x", bytes[i]);
    printf("\nmonotonic %lld.%09ld\n", (long long)after.tv_sec, after.tv_nsec);
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    printf("cpus %d, user time %lld.%06ld\n", CPU_COUNT(&set), (long long)usage.ru_utime.tv_sec, (long)usage.ru_utime.tv_usec);
    return 0;
}
