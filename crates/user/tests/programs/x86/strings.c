/* String instructions with REP prefixes in both directions (DF), and the atomic
 * read-modify-write instructions: cmpxchg, cmpxchg8b, cmpxchg16b (x86_64), xadd, xchg,
 * with LOCK. Prints deterministic results. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>

static unsigned long hash = 2166136261u;
static void mix_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        hash = (hash ^ b[i]) * 16777619u;
}

static unsigned char src[300], dst[300];

static void reset(void) {
    for (int i = 0; i < 300; i++) {
        src[i] = (unsigned char)(i * 7 + 3);
        dst[i] = 0xee;
    }
}

int main(void) {
    /* rep movsb/movsw/movsl forward and backward, with odd counts and offsets. */
    static const int counts[] = {0, 1, 3, 16, 17, 100, 255};
    for (unsigned k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        int n = counts[k];
        reset();
        void *d = dst + 5, *s = src + 3;
        long c = n;
        __asm__ volatile("cld\n\trep movsb" : "+D"(d), "+S"(s), "+c"(c) : : "memory");
        printf("movsb+ %d: left %ld d+%ld s+%ld\n", n, c, (long)((unsigned char *)d - dst), (long)((unsigned char *)s - src));
        mix_bytes(dst, sizeof dst);
        reset();
        d = dst + 5 + n - 1;
        s = src + 3 + n - 1;
        c = n;
        __asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(c) : : "memory");
        printf("movsb- %d: d+%ld\n", n, (long)((unsigned char *)d - dst));
        mix_bytes(dst, sizeof dst);
        reset();
        d = dst + 1;
        s = src + 2;
        c = n / 2;
        __asm__ volatile("cld\n\trep movsw" : "+D"(d), "+S"(s), "+c"(c) : : "memory");
        mix_bytes(dst, sizeof dst);
        d = dst + 2 + 4 * (n / 4);
        s = src + 3 + 4 * (n / 4);
        c = n / 4;
        __asm__ volatile("std\n\trep movsl\n\tcld" : "+D"(d), "+S"(s), "+c"(c) : : "memory");
        mix_bytes(dst, sizeof dst);
        /* rep stosb / stosl */
        d = dst + 7;
        c = n;
        __asm__ volatile("cld\n\trep stosb" : "+D"(d), "+c"(c) : "a"(0x5a) : "memory");
        d = dst + 200;
        c = n / 4 < 20 ? n / 4 : 20;
        __asm__ volatile("std\n\trep stosl\n\tcld" : "+D"(d), "+c"(c) : "a"(0x01020304) : "memory");
        mix_bytes(dst, sizeof dst);
        printf("after stos %d: %lx\n", n, hash);
    }
    /* repe cmpsb / repne scasb: where they stop, the flags they leave. */
    reset();
    memcpy(dst, src, 300);
    dst[77] ^= 1;
    {
        void *d = dst, *s = src;
        long c = 300;
        unsigned long f;
        __asm__ volatile("cld\n\trepe cmpsb\n\tpushf\n\tpop %[f]" : "+D"(d), "+S"(s), "+c"(c), [f] "=r"(f) : : "memory", "cc");
        printf("repe cmpsb: left %ld at %ld flags %lx\n", c, (long)((unsigned char *)d - dst), f & 0x8d5);
        d = dst + 299;
        s = src + 299;
        c = 300;
        __asm__ volatile("std\n\trepe cmpsb\n\tpushf\n\tpop %[f]\n\tcld" : "+D"(d), "+S"(s), "+c"(c), [f] "=r"(f) : : "memory", "cc");
        printf("repe cmpsb back: left %ld at %ld flags %lx\n", c, (long)((unsigned char *)d - dst), f & 0x8d5);
        d = src;
        c = 300;
        __asm__ volatile("cld\n\trepne scasb\n\tpushf\n\tpop %[f]" : "+D"(d), "+c"(c), [f] "=r"(f) : "a"(src[150]) : "memory", "cc");
        printf("repne scasb: left %ld at %ld flags %lx\n", c, (long)((unsigned char *)d - src), f & 0x8d5);
        d = src;
        c = 0;
        __asm__ volatile("cld\n\txor %%eax, %%eax\n\trepne scasb\n\tpushf\n\tpop %[f]" : "+D"(d), "+c"(c), [f] "=r"(f) : : "eax", "memory", "cc");
        printf("repne scasb with count 0: at %ld zf %lx\n", (long)((unsigned char *)d - src), f & 0x40);
        unsigned long got;
        void *sp = src + 10;
        __asm__ volatile("std\n\tlodsl\n\tlodsw\n\tcld" : "=a"(got), "+S"(sp) : : "memory");
        printf("lods back: %lx at %ld\n", got & 0xffff, (long)((unsigned char *)sp - src));
    }
    /* Atomics. */
    {
        uint32_t mem = 100, expected = 100, f;
        unsigned long fl;
        __asm__ volatile("lock cmpxchgl %[n], %[m]\n\tpushf\n\tpop %[f]" : [m] "+m"(mem), "+a"(expected), [f] "=r"(fl) : [n] "r"(7u) : "cc");
        printf("cmpxchg hit: mem %u eax %u zf %lx\n", mem, expected, fl & 0x40);
        expected = 5;
        __asm__ volatile("lock cmpxchgl %[n], %[m]\n\tpushf\n\tpop %[f]" : [m] "+m"(mem), "+a"(expected), [f] "=r"(fl) : [n] "r"(9u) : "cc");
        printf("cmpxchg miss: mem %u eax %u flags %lx\n", mem, expected, fl & 0x8d5);
        uint16_t m16 = 0xffff, a16 = 0xffff;
        __asm__ volatile("cmpxchgw %[n], %[m]" : [m] "+m"(m16), "+a"(a16) : [n] "r"((uint16_t)0x1234) : "cc");
        printf("cmpxchg16: %x %x\n", m16, a16);
        f = 40;
        uint32_t add = 2;
        __asm__ volatile("lock xaddl %[a], %[m]\n\tpushf\n\tpop %[f]" : [m] "+m"(f), [a] "+r"(add), [f] "=r"(fl) : : "cc");
        printf("xadd: mem %u old %u flags %lx\n", f, add, fl & 0x8d5);
        uint8_t b8 = 0xff, x8 = 1;
        __asm__ volatile("lock xaddb %[a], %[m]\n\tpushf\n\tpop %[f]" : [m] "+m"(b8), [a] "+q"(x8), [f] "=r"(fl) : : "cc");
        printf("xaddb: mem %u old %u flags %lx\n", b8, x8, fl & 0x8d5);
        uint32_t xv = 3;
        __asm__ volatile("xchgl %[v], %[m]" : [m] "+m"(f), [v] "+r"(xv));
        printf("xchg: %u %u\n", f, xv);
        uint64_t q = 0x1122334455667788ull;
        uint32_t lo = 0x55667788, hi = 0x11223344;
        uint32_t nlo = 0xdeadbeef, nhi = 0xcafef00d;
        unsigned char ok;
        __asm__ volatile("lock cmpxchg8b %[m]\n\tsete %[ok]" : [m] "+m"(q), "+a"(lo), "+d"(hi), [ok] "=q"(ok) : "b"(nlo), "c"(nhi) : "cc");
        printf("cmpxchg8b hit: %llx ok %u\n", (unsigned long long)q, ok);
        __asm__ volatile("lock cmpxchg8b %[m]\n\tsete %[ok]" : [m] "+m"(q), "+a"(lo), "+d"(hi), [ok] "=q"(ok) : "b"(1), "c"(2) : "cc");
        printf("cmpxchg8b miss: %llx edx:eax %x:%x ok %u\n", (unsigned long long)q, hi, lo, ok);
#ifdef __x86_64__
        static union { __int128 whole; uint64_t q[2]; } u = {.q = {1, 2}};
        uint64_t *o = u.q;
        uint64_t a = 1, d = 2;
        __asm__ volatile("lock cmpxchg16b %[m]\n\tsete %[ok]" : [m] "+m"(u.whole), "+a"(a), "+d"(d), [ok] "=q"(ok) : "b"(3ull), "c"(4ull) : "cc");
        printf("cmpxchg16b hit: %llx %llx ok %u\n", (unsigned long long)o[0], (unsigned long long)o[1], ok);
        __asm__ volatile("lock cmpxchg16b %[m]\n\tsete %[ok]" : [m] "+m"(u.whole), "+a"(a), "+d"(d), [ok] "=q"(ok) : "b"(5ull), "c"(6ull) : "cc");
        printf("cmpxchg16b miss: rdx:rax %llx:%llx ok %u\n", (unsigned long long)d, (unsigned long long)a, ok);
#endif
    }
    printf("hash %lx\n", hash);
    return 0;
}
