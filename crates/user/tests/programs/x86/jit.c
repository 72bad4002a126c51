/* Generated code: a page mapped writable and executable, code written, run, rewritten
 * and run again (the decoded copy must follow the store); then the page unmapped and new
 * code mapped at the same address; then the page made non-writable, where a store must
 * fault with SIGSEGV (with an argument). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

typedef int (*fn)(int);

/* mov eax, imm32; add eax, edi (x86_64) / add eax, [esp+4] (i386); ret */
static void emit(unsigned char *p, int imm) {
    int n = 0;
    p[n++] = 0xb8;
    memcpy(p + n, &imm, 4);
    n += 4;
#ifdef __x86_64__
    p[n++] = 0x01;
    p[n++] = 0xf8;
#else
    p[n++] = 0x03;
    p[n++] = 0x44;
    p[n++] = 0x24;
    p[n++] = 0x04;
#endif
    p[n++] = 0xc3;
}

int main(int argc, char **argv) {
    (void)argv;
    unsigned char *page = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 1;
    int total = 0;
    for (int round = 0; round < 50; round++) {
        emit(page, round * 1000);
        emit(page + 2000, -round);
        total += ((fn)page)(round) + ((fn)(page + 2000))(7);
    }
    printf("rewritten 50 times: %d\n", total);
    /* Rewrite one byte of the immediate inside the loop that runs it. */
    emit(page, 5);
    for (int i = 0; i < 10; i++) {
        page[1] = (unsigned char)(i * 3);
        total += ((fn)page)(0);
    }
    printf("byte patches: %d\n", total);
    munmap(page, 4096);
    unsigned char *again = mmap(page, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    emit(again, 77);
    mprotect(again, 4096, PROT_READ | PROT_EXEC);
    printf("same address: %d, new code: %d\n", again == page, ((fn)again)(1));
    fflush(stdout);
    if (argc > 1)
        again[1] = 0;
    return 0;
}
