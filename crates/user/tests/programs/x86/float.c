/* Floating point: SSE arithmetic in the four MXCSR rounding modes with the exception
 * flags it raises (DAZ/FTZ too), conversions, x87 arithmetic in every precision and
 * rounding setting of its control word, transcendental-free x87 operations, and printf
 * of floats and doubles. Everything printed is defined by the manuals and IEEE 754. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>

static unsigned long hash = 2166136261u;
static void mix(uint64_t v) {
    for (int i = 0; i < 8; i++)
        hash = (hash ^ ((v >> (8 * i)) & 0xff)) * 16777619u;
}

static uint64_t bits_d(double d) {
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}
static uint32_t bits_f(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}
static double from_bits(uint64_t b) {
    double d;
    memcpy(&d, &b, 8);
    return d;
}

static uint32_t get_mxcsr(void) {
    uint32_t m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    return m;
}
static void set_mxcsr(uint32_t m) { __asm__ volatile("ldmxcsr %0" : : "m"(m)); }

static const double operands[] = {1.0, 3.0, -7.0, 0.1, 1e308, 1e-308, 4.9406564584124654e-324,
                                  2.2250738585072014e-308, -0.0, 1.0 / 3.0, 123456789.125, 0.5};
#define NOPS (sizeof operands / sizeof operands[0])

int main(void) {
    static const char *modes[] = {"nearest", "down", "up", "zero"};
    for (int mode = 0; mode < 4; mode++) {
        for (int ftz = 0; ftz < 2; ftz++) {
            uint32_t base = 0x1f80 | (uint32_t)mode << 13 | (ftz ? 0x8040 : 0);
            for (unsigned i = 0; i < NOPS; i++) {
                for (unsigned j = 0; j < NOPS; j += 3) {
                    double a = operands[i], b = operands[j], r[4];
                    uint32_t flags[4];
                    static const char op[4] = {'+', '-', '*', '/'};
                    for (int k = 0; k < 4; k++) {
                        set_mxcsr(base);
                        double x = a;
                        switch (k) {
                        case 0: __asm__ volatile("addsd %1, %0" : "+x"(x) : "x"(b)); break;
                        case 1: __asm__ volatile("subsd %1, %0" : "+x"(x) : "x"(b)); break;
                        case 2: __asm__ volatile("mulsd %1, %0" : "+x"(x) : "x"(b)); break;
                        case 3: __asm__ volatile("divsd %1, %0" : "+x"(x) : "x"(b)); break;
                        }
                        r[k] = x;
                        flags[k] = get_mxcsr() & 0x3f;
                    }
                    set_mxcsr(base);
                    float fa = (float)a;
                    float fs;
                    __asm__ volatile("sqrtss %1, %0" : "=x"(fs) : "x"(fa < 0 ? -fa : fa));
                    uint32_t fflag = get_mxcsr() & 0x3f;
                    set_mxcsr(base);
                    int32_t conv;
                    __asm__ volatile("cvtsd2si %1, %0" : "=r"(conv) : "x"(a * 1000.0));
                    uint32_t cflag = get_mxcsr() & 0x3f;
                    set_mxcsr(0x1f80);
                    printf("%s%s %d %d:", modes[mode], ftz ? "/ftz" : "", i, j);
                    for (int k = 0; k < 4; k++) {
                        printf(" %c%016llx/%02x", op[k], (unsigned long long)bits_d(r[k]), flags[k]);
                        mix(bits_d(r[k]) ^ flags[k]);
                    }
                    printf(" sqrt %08x/%02x cvt %d/%02x\n", bits_f(fs), fflag, conv, cflag);
                    mix(bits_f(fs) ^ fflag ^ (uint32_t)conv ^ cflag);
                }
            }
        }
    }
    /* Packed single with a denormal and an invalid operation. */
    {
        set_mxcsr(0x1f80);
        float v[4] = {1.0f, -1.0f, 1e-40f, 0.0f}, w[4] = {3.0f, 0.0f, 1e10f, 0.0f};
        __asm__ volatile("movups %0, %%xmm0\n\tmovups %1, %%xmm1\n\tdivps %%xmm1, %%xmm0\n\tmovups %%xmm0, %0"
                         : "+m"(v) : "m"(w) : "xmm0", "xmm1");
        printf("divps %08x %08x %08x %08x mxcsr %04x\n", bits_f(v[0]), bits_f(v[1]), bits_f(v[2]), bits_f(v[3]), get_mxcsr());
        set_mxcsr(0x1f80);
    }
    /* x87: precision control (24, 53, 64 bits) and rounding control. */
    static const char *precisions[] = {"single", "reserved", "double", "extended"};
    for (int pc = 0; pc < 4; pc += 1) {
        if (pc == 1)
            continue;
        for (int rc = 0; rc < 4; rc++) {
            uint16_t cw = 0x037f & ~0x0f00;
            cw |= (uint16_t)(pc << 8 | rc << 10);
            long double results[5];
            uint16_t sw[5];
            for (int k = 0; k < 5; k++) {
                long double x = 1.0L, y = 3.0L, r;
                uint16_t s;
                __asm__ volatile("fclex\n\tfldcw %[cw]" : : [cw] "m"(cw));
                switch (k) {
                case 0: __asm__ volatile("fdivrp" : "=t"(r) : "0"(y), "u"(x) : "st(1)"); break;
                case 1: { long double t = 2.0L; __asm__ volatile("fsqrt" : "=t"(r) : "0"(t)); } break;
                case 2: { long double t = 0.1L; __asm__ volatile("fmul %%st(0), %%st(0)" : "=t"(r) : "0"(t)); } break;
                case 3: { long double a = 1e4000L, b = 1e-4000L; __asm__ volatile("fmulp" : "=t"(r) : "0"(a), "u"(b) : "st(1)"); } break;
                case 4: { long double t = 2.5L; __asm__ volatile("frndint" : "=t"(r) : "0"(t)); } break;
                }
                __asm__ volatile("fnstsw %0" : "=m"(s));
                results[k] = r;
                sw[k] = s & 0x3f;
            }
            uint16_t restore = 0x037f;
            __asm__ volatile("fldcw %0" : : "m"(restore));
            printf("x87 %s rc%d:", precisions[pc], rc);
            for (int k = 0; k < 5; k++) {
                unsigned char raw[10];
                memcpy(raw, &results[k], 10);
                printf(" ");
                for (int b = 9; b >= 0; b--)
                    printf("%02x", raw[b]);
                printf("/%02x", sw[k]);
                uint64_t m;
                memcpy(&m, raw, 8);
                mix(m ^ ((uint64_t)raw[8] << 8 | raw[9]) ^ sw[k]);
            }
            printf("\n");
        }
    }
    /* x87 integer conversions and comparisons. */
    {
        long double v = -2.5L;
        int32_t i32;
        int64_t i64;
        __asm__ volatile("fistl %0" : "=m"(i32) : "t"(v));
        __asm__ volatile("fistpll %0" : "=m"(i64) : "t"(v * 1e15L) : "st");
        uint16_t s;
        long double one = 1.0L, two = 2.0L;
        __asm__ volatile("fcom %%st(1)\n\tfnstsw %0" : "=a"(s) : "t"(one), "u"(two));
        printf("fist %d %lld fcom %04x\n", i32, (long long)i64, s & 0x4500);
    }
    /* printf of floats. */
    static const double printed[] = {0.0, -0.0, 1.0, 0.1, 1.0 / 3.0, 2.0 / 3.0, 1e300, 1e-300,
                                     123456.789, 5e-324, 1.7976931348623157e308};
    for (unsigned i = 0; i < sizeof printed / sizeof printed[0]; i++)
        printf("%g %.17g %e %.3f %a\n", printed[i], printed[i], printed[i], printed[i], printed[i]);
    printf("%.20Lg %Lg\n", 1.0L / 3.0L, 2.0L / 7.0L);
    printf("%f %g\n", (double)1.1f, (double)(float)from_bits(0x3fb999999999999aull));
    printf("hash %lx\n", hash);
    return 0;
}
