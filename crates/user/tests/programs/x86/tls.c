/* Thread-local storage as the C library sets it up (arch_prctl on x86_64,
 * set_thread_area and %gs on i386), and the TLS calls used directly: x86_64 reads through
 * a GS base it sets; i386 takes another TLS slot (entry_number -1) and reads through %fs.
 * Addresses differ between runs, so only relations and slot numbers are printed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static __thread int counter = 5;
static __thread char name[16] = "tls";
static unsigned long data[4] = {0x1111, 0x2222, 0x3333, 0x4444};

int main(void) {
    counter += 37;
    strcat(name, "-ok");
    printf("tls %d %s\n", counter, name);
#ifdef __x86_64__
    unsigned long fs = 0, self, gs = 1, v;
    syscall(SYS_arch_prctl, 0x1003, &fs);
    __asm__ volatile("mov %%fs:0, %0" : "=r"(self));
    printf("fs base is the thread pointer: %d\n", fs == self && fs != 0);
    printf("set gs: %ld\n", syscall(SYS_arch_prctl, 0x1001, data));
    __asm__ volatile("mov %%gs:8, %0" : "=r"(v));
    syscall(SYS_arch_prctl, 0x1004, &gs);
    printf("gs read %lx, base is data: %d\n", v, gs == (unsigned long)data);
    printf("bad code: %ld\n", syscall(SYS_arch_prctl, 0x9999, 0));
#else
    unsigned gs_selector;
    __asm__ volatile("mov %%gs, %0" : "=r"(gs_selector));
    printf("gs entry %u rpl %u\n", gs_selector >> 3, gs_selector & 3);
    uint32_t desc[4] = {gs_selector >> 3, 0, 0, 0};
    long r = syscall(SYS_get_thread_area, desc);
    printf("get_thread_area %ld: entry %u limit %x flags %x\n", r, desc[0], desc[2], desc[3]);
    uint32_t mine[4] = {0xffffffffu, (uint32_t)(uintptr_t)data, 0xfff, 0x1 /* seg_32bit */};
    r = syscall(SYS_set_thread_area, mine);
    printf("set_thread_area %ld: entry %u\n", r, mine[0]);
    unsigned selector = mine[0] << 3 | 3, value;
    __asm__ volatile("mov %1, %%fs\n\tmov %%fs:8, %0" : "=r"(value) : "r"(selector));
    printf("fs read %x\n", value);
    uint32_t again[4] = {0xffffffffu, 0, 0xfff, 0x1};
    r = syscall(SYS_set_thread_area, again);
    printf("third slot %ld: entry %u\n", r, again[0]);
    r = syscall(SYS_set_thread_area, again);
    printf("no slot left: %ld\n", r);
    uint32_t bad[4] = {3, 0, 0xfff, 0x1};
    printf("slot 3: %ld\n", syscall(SYS_set_thread_area, bad));
#endif
    return 0;
}
