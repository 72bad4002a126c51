/* A fault chosen by the argument, to compare the signal that ends the program:
 * div (#DE, SIGFPE), ud2 (#UD, SIGILL), int3 (SIGTRAP), hlt (#GP, SIGSEGV), null (#PF,
 * SIGSEGV), exec (a jump to a non-executable page, SIGSEGV), abort (SIGABRT), sse (an
 * unmasked SSE divide-by-zero: #XM, SIGFPE), x87 (an unmasked x87 divide-by-zero reported
 * at the next FWAIT: #MF, SIGFPE). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int zero = 0;
static unsigned char data_page[64];

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    printf("fault %s\n", argv[1]);
    fflush(stdout);
    const char *f = argv[1];
    if (!strcmp(f, "div")) {
        int r;
        __asm__ volatile("cltd\n\tidivl %1" : "=a"(r) : "r"(zero), "a"(7) : "edx");
        printf("%d\n", r);
    } else if (!strcmp(f, "ud2")) {
        __asm__ volatile("ud2");
    } else if (!strcmp(f, "int3")) {
        __asm__ volatile("int3");
    } else if (!strcmp(f, "hlt")) {
        __asm__ volatile("hlt");
    } else if (!strcmp(f, "null")) {
        *(volatile int *)(long)zero = 1;
    } else if (!strcmp(f, "exec")) {
        data_page[0] = 0xc3;
        ((void (*)(void))data_page)();
    } else if (!strcmp(f, "sse")) {
        unsigned int mxcsr = 0x1f80 & ~0x200; /* ZM clear */
        double x = 1.0, y = zero;
        __asm__ volatile("ldmxcsr %1\n\tdivsd %2, %0" : "+x"(x) : "m"(mxcsr), "x"(y));
        printf("%f\n", x);
    } else if (!strcmp(f, "x87")) {
        unsigned short cw = 0x037f & ~0x4; /* ZM clear */
        __asm__ volatile("fldcw %0\n\tfld1\n\tfldz\n\tfdivrp\n\tfwait\n\tfstp %%st(0)" : : "m"(cw));
    } else if (!strcmp(f, "abort")) {
        abort();
    }
    printf("no fault\n");
    return 0;
}
