/* Misaligned and page-crossing loads and stores on two fresh anonymous pages (mmap),
 * strings across the boundary, mprotect, then (with an argument) a store to the
 * read-only page, which must end the program with SIGSEGV. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    unsigned char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed\n");
        return 1;
    }
    printf("fresh pages are zero: %d\n", p[0] == 0 && p[4095] == 0 && p[4096] == 0 && p[8191] == 0);
    for (int i = 0; i < 8192; i++)
        p[i] = (unsigned char)(i * 13 + 1);
    unsigned long sum = 0;
    /* Every misalignment across the boundary, 2, 4 and 8 bytes. */
    for (int off = 4096 - 9; off <= 4096 + 1; off++) {
        uint16_t w;
        uint32_t d;
        uint64_t q;
        __asm__ volatile("movw (%1), %0" : "=r"(w) : "r"(p + off) : "memory");
        __asm__ volatile("movl (%1), %0" : "=r"(d) : "r"(p + off) : "memory");
        memcpy(&q, p + off, 8);
        printf("off %d: %04x %08x %016llx\n", off, w, d, (unsigned long long)q);
        sum = sum * 31 + w + d + q;
    }
    for (int off = 4096 - 7; off < 4096; off++) {
        uint32_t v = 0xa1b2c3d4u + off;
        __asm__ volatile("movl %1, (%0)" : : "r"(p + off), "r"(v) : "memory");
        uint16_t w = (uint16_t)off;
        __asm__ volatile("movw %1, 3(%0)" : : "r"(p + off), "r"(w) : "memory");
        __asm__ volatile("addl $0x1001, (%0)" : : "r"(p + off - 1) : "memory", "cc");
        __asm__ volatile("incl 1(%0)" : : "r"(p + off) : "memory", "cc");
    }
    for (int i = 4080; i < 4112; i++)
        printf("%02x", p[i]);
    printf("\n");
    /* A string move across the boundary, overlapping. */
    memmove(p + 4090, p + 4000, 200);
    memmove(p + 4000, p + 4003, 200);
    for (int i = 0; i < 8192; i += 97)
        sum = sum * 7 + p[i];
    printf("sum %lx\n", sum);
    if (mprotect(p + 4096, 4096, PROT_READ) != 0) {
        printf("mprotect failed\n");
        return 1;
    }
    printf("read-only still reads: %02x\n", p[5000]);
    fflush(stdout);
    if (argc > 1) {
        /* A 4-byte store that starts on the writable page and ends on the read-only one:
         * nothing may be written. */
        __asm__ volatile("movl $0xffffffff, (%0)" : : "r"(p + 4094) : "memory");
        printf("not reached\n");
    }
    munmap(p, 8192);
    return 0;
}
