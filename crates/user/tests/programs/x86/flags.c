/* Integer instructions and their flags, printed with the flags the manuals leave
 * undefined masked out: add/sub/adc/sbb, shifts and rotates (counts 0, 1, n, >= width),
 * mul/imul/div/idiv, bt/bts/btr/btc with register and memory bit offsets, bsf/bsr. Built
 * for x86_64 and i386; the host runs it natively and under panda exec. */
#include <stdio.h>
#include <stdint.h>

#define CF 0x001
#define PF 0x004
#define AF 0x010
#define ZF 0x040
#define SF 0x080
#define OF 0x800
#define ARITH (CF | PF | AF | ZF | SF | OF)

typedef unsigned long word; /* 64 bits on x86_64, 32 on i386 */

static const uint32_t values[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff,
                                  0x7fffffff, 0x80000000, 0xffffffff, 0x12345678, 0xdeadbeef};
#define NV (sizeof values / sizeof values[0])

static unsigned long hash = 1469598103u;
static void mix(unsigned long v) { hash = (hash ^ v) * 16777619u; }

/* Two-operand ALU op with flags in and out; `in` seeds CF for adc/sbb. */
#define BINOP(name, insn, suffix, type, reg)                                              \
    static type name(type a, type b, word in, word *out) {                             \
        word f;                                                                           \
        __asm__ volatile("push %[in]\n\tpopf\n\t" insn suffix " %" reg "[b], %" reg "[a]\n\t" \
                         "pushf\n\tpop %[f]"                                              \
                         : [a] "+r"(a), [f] "=&r"(f)                                      \
                         : [b] "r"(b), [in] "r"(in)                                       \
                         : "cc");                                                         \
        *out = f;                                                                         \
        return a;                                                                         \
    }

BINOP(add8, "add", "b", uint8_t, "b")
BINOP(add16, "add", "w", uint16_t, "w")
BINOP(add32, "add", "l", uint32_t, "k")
BINOP(sub8, "sub", "b", uint8_t, "b")
BINOP(sub16, "sub", "w", uint16_t, "w")
BINOP(sub32, "sub", "l", uint32_t, "k")
BINOP(adc32, "adc", "l", uint32_t, "k")
BINOP(sbb32, "sbb", "l", uint32_t, "k")
BINOP(adc8, "adc", "b", uint8_t, "b")
BINOP(sbb16, "sbb", "w", uint16_t, "w")
BINOP(and32, "and", "l", uint32_t, "k")
BINOP(or16, "or", "w", uint16_t, "w")
BINOP(xor8, "xor", "b", uint8_t, "b")
BINOP(cmp32, "cmp", "l", uint32_t, "k")

/* Shift/rotate by CL. */
#define SHIFT(name, insn, suffix, type, reg)                                              \
    static type name(type a, uint8_t count, word in, word *out) {                      \
        word f;                                                                           \
        __asm__ volatile("push %[in]\n\tpopf\n\t" insn suffix " %%cl, %" reg "[a]\n\t"    \
                         "pushf\n\tpop %[f]"                                              \
                         : [a] "+r"(a), [f] "=&r"(f)                                      \
                         : "c"(count), [in] "r"(in)                                       \
                         : "cc");                                                         \
        *out = f;                                                                         \
        return a;                                                                         \
    }

SHIFT(shl8, "shl", "b", uint8_t, "b")
SHIFT(shr16, "shr", "w", uint16_t, "w")
SHIFT(sar32, "sar", "l", uint32_t, "k")
SHIFT(shl32, "shl", "l", uint32_t, "k")
SHIFT(rol8, "rol", "b", uint8_t, "b")
SHIFT(ror16, "ror", "w", uint16_t, "w")
SHIFT(rcl32, "rcl", "l", uint32_t, "k")
SHIFT(rcr8, "rcr", "b", uint8_t, "b")
SHIFT(rol32, "rol", "l", uint32_t, "k")

typedef uint32_t (*binop32)(uint32_t, uint32_t, word, word *);

static void show_(const char *what, unsigned long a, unsigned long b, unsigned long r,
                  word f, word defined) {
    mix(r);
    mix(f & defined);
    printf("%s %lx %lx = %lx flags %03lx\n", what, a, b, r, (unsigned long)(f & defined));
}

/* The result is computed before the flags are read (argument order is unspecified). */
#define show(what, a, b, expr, flagsv, defined)                                           \
    do {                                                                                  \
        unsigned long result_ = (expr);                                                   \
        show_(what, a, b, result_, flagsv, defined);                                      \
    } while (0)

int main(void) {
    word f;
    for (unsigned i = 0; i < NV; i++) {
        for (unsigned j = 0; j < NV; j++) {
            uint32_t a = values[i], b = values[j];
            for (word carry = 0; carry < 2; carry++) {
                word in = 0x202 | carry;
                show("add8", a & 0xff, b & 0xff, add8(a, b, in, &f), f, ARITH);
                show("add16", a & 0xffff, b & 0xffff, add16(a, b, in, &f), f, ARITH);
                show("add32", a, b, add32(a, b, in, &f), f, ARITH);
                show("sub8", a & 0xff, b & 0xff, sub8(a, b, in, &f), f, ARITH);
                show("sub16", a & 0xffff, b & 0xffff, sub16(a, b, in, &f), f, ARITH);
                show("sub32", a, b, sub32(a, b, in, &f), f, ARITH);
                show("adc32", a, b, adc32(a, b, in, &f), f, ARITH);
                show("sbb32", a, b, sbb32(a, b, in, &f), f, ARITH);
                show("adc8", a & 0xff, b & 0xff, adc8(a, b, in, &f), f, ARITH);
                show("sbb16", a & 0xffff, b & 0xffff, sbb16(a, b, in, &f), f, ARITH);
                /* AF is undefined after logic instructions. */
                show("and32", a, b, and32(a, b, in, &f), f, ARITH & ~AF);
                show("or16", a & 0xffff, b & 0xffff, or16(a, b, in, &f), f, ARITH & ~AF);
                show("xor8", a & 0xff, b & 0xff, xor8(a, b, in, &f), f, ARITH & ~AF);
                show("cmp32", a, b, cmp32(a, b, in, &f), f, ARITH);
            }
        }
    }
    static const uint8_t counts[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 255};
    for (unsigned i = 0; i < NV; i++) {
        for (unsigned k = 0; k < sizeof counts; k++) {
            uint32_t a = values[i];
            uint8_t c = counts[k];
            for (word carry = 0; carry < 2; carry++) {
                word in = 0x202 | carry | (carry ? OF | ZF : SF);
                /* Count 0 leaves every flag; count 1 defines OF; larger counts leave OF
                 * undefined, and AF is undefined for any nonzero count. Rotates define
                 * only CF (and OF for count 1). */
                unsigned m = c & 31;
                word sh = m == 0 ? ARITH : (m == 1 ? ARITH & ~AF : ARITH & ~AF & ~OF);
                word ro = m == 0 ? ARITH : (m == 1 ? CF | OF : CF);
                unsigned m8 = c & 31; /* rcl/rcr/rol on 8 bits: count mod 9 / 8 applies */
                (void)m8;
                show("shl8", a & 0xff, c, shl8(a, c, in, &f), f, sh);
                show("shr16", a & 0xffff, c, shr16(a, c, in, &f), f, sh);
                show("sar32", a, c, sar32(a, c, in, &f), f, sh);
                show("shl32", a, c, shl32(a, c, in, &f), f, sh);
                show("rol8", a & 0xff, c, rol8(a, c, in, &f), f, ro);
                show("ror16", a & 0xffff, c, ror16(a, c, in, &f), f, ro);
                show("rcl32", a, c, rcl32(a, c, in, &f), f, ro);
                show("rcr8", a & 0xff, c, rcr8(a, c, in, &f), f, ro);
                show("rol32", a, c, rol32(a, c, in, &f), f, ro);
            }
        }
    }
    /* mul/imul/div/idiv: CF and OF after multiplication; nothing after division. */
    for (unsigned i = 0; i < NV; i++) {
        for (unsigned j = 0; j < NV; j++) {
            uint32_t a = values[i], b = values[j], lo, hi;
            __asm__ volatile("mull %[b]\n\tpushf\n\tpop %[f]"
                             : "=a"(lo), "=d"(hi), [f] "=r"(f)
                             : "a"(a), [b] "r"(b)
                             : "cc");
            show("mul32", a, b, lo ^ ((unsigned long)hi << 7), f, CF | OF);
            __asm__ volatile("imull %[b]\n\tpushf\n\tpop %[f]"
                             : "=a"(lo), "=d"(hi), [f] "=r"(f)
                             : "a"(a), [b] "r"(b)
                             : "cc");
            show("imul32", a, b, lo ^ ((unsigned long)hi << 7), f, CF | OF);
            uint32_t r = a;
            __asm__ volatile("imull %[b], %[r]\n\tpushf\n\tpop %[f]"
                             : [r] "+r"(r), [f] "=r"(f)
                             : [b] "r"(b)
                             : "cc");
            show("imul2", a, b, r, f, CF | OF);
            uint16_t w = a;
            __asm__ volatile("imulw $-3, %[w], %[w]\n\tpushf\n\tpop %[f]"
                             : [w] "+r"(w), [f] "=r"(f)
                             :
                             : "cc");
            show("imul16i", a & 0xffff, 0, w, f, CF | OF);
            uint8_t al = a, bl = b;
            uint16_t ax;
            __asm__ volatile("mulb %[b]\n\tpushf\n\tpop %[f]"
                             : "=a"(ax), [f] "=r"(f)
                             : "a"(al), [b] "q"(bl)
                             : "cc");
            show("mul8", al, bl, ax, f, CF | OF);
            if (b != 0) {
                uint32_t q, rem, high = a % b; /* keep the quotient in range */
                __asm__ volatile("divl %[b]" : "=a"(q), "=d"(rem) : "a"(a), "d"(high), [b] "r"(b));
                show("div32", a, b, q ^ ((unsigned long)rem << 5), 0, 0);
                int32_t sa = (int32_t)a, sb = (int32_t)b;
                if (!(sa == INT32_MIN && sb == -1)) {
                    int32_t sq, sr;
                    __asm__ volatile("cltd\n\tidivl %[b]" : "=a"(sq), "=&d"(sr) : "a"(sa), [b] "r"(sb));
                    show("idiv32", a, b, (uint32_t)sq ^ ((unsigned long)(uint32_t)sr << 5), 0, 0);
                }
                uint16_t q16;
                uint8_t b8 = b ? (b & 0xff ? b & 0xff : 1) : 1;
                uint16_t dividend = (a & 0xff) * b8 + (a >> 8) % b8;
                __asm__ volatile("divb %[b]" : "=a"(q16) : "a"(dividend), [b] "q"(b8));
                show("div8", dividend, b8, q16, 0, 0);
            }
        }
    }
    /* Bit tests with register and memory operands: memory offsets reach past the
     * addressed word, negative ones before it. */
    uint32_t bits[8] = {0x11111111, 0x22222222, 0x44444444, 0x88888888,
                        0xf0f0f0f0, 0x0f0f0f0f, 0xaaaaaaaa, 0x55555555};
    static const int32_t offsets[] = {0, 1, 5, 31, 32, 33, 63, 64, 100, 120, -1, -32, -33, -64};
    for (unsigned k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
        int32_t off = offsets[k];
        uint32_t *base = &bits[4];
        word before = 0x202;
        __asm__ volatile("push %[in]\n\tpopf\n\tbtl %[o], (%[p])\n\tpushf\n\tpop %[f]"
                         : [f] "=&r"(f) : [o] "r"(off), [p] "r"(base), [in] "r"(before) : "cc", "memory");
        show("btm", (uint32_t)off, 0, 0, f, CF);
        __asm__ volatile("push %[in]\n\tpopf\n\tbtsl %[o], (%[p])\n\tpushf\n\tpop %[f]"
                         : [f] "=&r"(f) : [o] "r"(off), [p] "r"(base), [in] "r"(before) : "cc", "memory");
        show("btsm", (uint32_t)off, 0, 0, f, CF);
        __asm__ volatile("push %[in]\n\tpopf\n\tbtrl %[o], (%[p])\n\tpushf\n\tpop %[f]"
                         : [f] "=&r"(f) : [o] "r"(off + 3), [p] "r"(base), [in] "r"(before) : "cc", "memory");
        show("btrm", (uint32_t)off, 0, 0, f, CF);
        __asm__ volatile("push %[in]\n\tpopf\n\tbtcl %[o], (%[p])\n\tpushf\n\tpop %[f]"
                         : [f] "=&r"(f) : [o] "r"(off - 7), [p] "r"(base), [in] "r"(before) : "cc", "memory");
        show("btcm", (uint32_t)off, 0, 0, f, CF);
        uint16_t w = 0x8421;
        __asm__ volatile("btw %[o], %[w]\n\tpushf\n\tpop %[f]"
                         : [f] "=r"(f) : [o] "r"((uint16_t)off), [w] "r"(w) : "cc");
        show("btw", (uint32_t)off, w, 0, f, CF);
        __asm__ volatile("btsl $35, (%[p])\n\tpushf\n\tpop %[f]"
                         : [f] "=r"(f) : [p] "r"(base) : "cc", "memory");
        show("btsi", 35, 0, base[0], f, CF);
    }
    for (unsigned k = 0; k < 8; k++)
        show("bits", k, 0, bits[k], 0, 0);
    for (unsigned i = 0; i < NV; i++) {
        uint32_t a = values[i], r = 0x5a5a;
        if (a == 0)
            continue; /* the destination is undefined for a zero source */
        __asm__ volatile("bsfl %[a], %[r]\n\tpushf\n\tpop %[f]" : [r] "+r"(r), [f] "=r"(f) : [a] "r"(a) : "cc");
        show("bsf", a, 0, r, f, ZF);
        __asm__ volatile("bsrl %[a], %[r]\n\tpushf\n\tpop %[f]" : [r] "+r"(r), [f] "=r"(f) : [a] "r"(a) : "cc");
        show("bsr", a, 0, r, f, ZF);
    }
    uint32_t zero = 0, r = 0;
    __asm__ volatile("bsfl %[a], %[r]\n\tpushf\n\tpop %[f]" : [r] "+r"(r), [f] "=r"(f) : [a] "r"(zero) : "cc");
    show("bsf0", 0, 0, 0, f, ZF);
#ifdef __x86_64__
    /* 64-bit forms. */
    for (unsigned i = 0; i < NV; i++) {
        uint64_t a = (uint64_t)values[i] << 32 | values[(i + 3) % NV], b = values[(i + 5) % NV];
        uint64_t s = a, c = 63 - i;
        __asm__ volatile("addq %[b], %[s]\n\tpushf\n\tpop %[f]" : [s] "+r"(s), [f] "=r"(f) : [b] "r"(b << 31) : "cc");
        show("add64", a, b, s, f, ARITH);
        s = a;
        __asm__ volatile("shrdq %%cl, %[b], %[s]\n\tpushf\n\tpop %[f]" : [s] "+r"(s), [f] "=r"(f) : [b] "r"(b), "c"(c) : "cc");
        show("shrd64", a, c, s, f, c == 1 ? ARITH & ~AF : CF | ZF | SF | PF);
        uint64_t lo, hi;
        __asm__ volatile("mulq %[b]" : "=a"(lo), "=d"(hi) : "a"(a), [b] "r"(b * 0x9e3779b97f4a7c15ull) : "cc");
        show("mul64", a, b, lo ^ hi, 0, 0);
        s = a;
        __asm__ volatile("bsrq %[a], %[r]" : [r] "+r"(s) : [a] "r"(a | 1) : "cc");
        show("bsr64", a, 0, s, 0, 0);
        s = a;
        __asm__ volatile("bswapq %[s]" : [s] "+r"(s));
        show("bswap64", a, 0, s, 0, 0);
    }
#endif
    printf("hash %lx\n", hash);
    return 0;
}
