/* Compute-bound integer kernel for the x86 executor benchmark: SHA-256 over a
 * pseudo-random buffer, an LZ77-style compressor with a hash chain over it, and an
 * insertion/shell sort of 32-bit keys. Freestanding: no libc. */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;

#define BUF_LEN (2u << 20)
#define SORT_LEN 20000

static u8 buf[BUF_LEN];
static u8 out[BUF_LEN + BUF_LEN / 8 + 16];
static u32 head[1 << 15];
static u32 keys[SORT_LEN];

void *memset(void *d, int c, u64 n) {
    u8 *p = d;
    while (n--) *p++ = (u8)c;
    return d;
}
void *memcpy(void *d, const void *s, u64 n) {
    u8 *p = d;
    const u8 *q = s;
    while (n--) *p++ = *q++;
    return d;
}

static const u32 K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(u32 *h, const u8 *p) {
    u32 w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (u32)p[4 * i] << 24 | (u32)p[4 * i + 1] << 16 | (u32)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        u32 s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        u32 s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    u32 a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        u32 t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        u32 t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

static u32 sha256(const u8 *p, u64 n) {
    u32 h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    for (u64 i = 0; i + 64 <= n; i += 64) sha256_block(h, p + i);
    return h[0] ^ h[7];
}

/* LZ77 with a 32 KiB window: literal runs and (length, distance) pairs. */
static u64 compress(const u8 *src, u64 n, u8 *dst) {
    u64 o = 0, i = 0;
    memset(head, 0xff, sizeof head);
    while (i + 4 <= n) {
        u32 v = (u32)src[i] | (u32)src[i + 1] << 8 | (u32)src[i + 2] << 16;
        u32 hsh = (v * 2654435761u) >> 17;
        u32 cand = head[hsh];
        head[hsh] = (u32)i;
        u64 len = 0;
        if (cand != 0xffffffffu && i - cand < 32768) {
            while (i + len < n && len < 258 && src[cand + len] == src[i + len]) len++;
        }
        if (len >= 4) {
            u64 dist = i - cand;
            dst[o++] = 0x80 | (u8)(len - 4 >> 8 & 1);
            dst[o++] = (u8)(len - 4);
            dst[o++] = (u8)dist;
            dst[o++] = (u8)(dist >> 8);
            i += len;
        } else {
            dst[o++] = src[i] & 0x7f;
            i++;
        }
    }
    while (i < n) dst[o++] = src[i++] & 0x7f;
    return o;
}

static void shell_sort(u32 *a, int n) {
    static const int gaps[] = {1750, 701, 301, 132, 57, 23, 10, 4, 1};
    for (int g = 0; g < 9; g++) {
        int gap = gaps[g];
        for (int i = gap; i < n; i++) {
            u32 t = a[i];
            int j = i;
            while (j >= gap && a[j - gap] > t) { a[j] = a[j - gap]; j -= gap; }
            a[j] = t;
        }
    }
}

u64 kernel(void) {
    u64 x = 0x9e3779b97f4a7c15ul;
    for (u64 i = 0; i < BUF_LEN; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        /* compressible: small alphabet with repeats */
        buf[i] = (u8)((x >> 29) % 12 + 'a');
        if ((x & 0x1f) == 0 && i > 64) buf[i] = buf[i - 40];
    }
    u64 r = sha256(buf, BUF_LEN);
    u64 clen = compress(buf, BUF_LEN, out);
    r = r * 31 + clen + sha256(out, clen);
    for (int i = 0; i < SORT_LEN; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        keys[i] = (u32)x;
    }
    shell_sort(keys, SORT_LEN);
    for (int i = 1; i < SORT_LEN; i++)
        if (keys[i - 1] > keys[i]) r ^= 0xdead;
    r = r * 31 + keys[SORT_LEN / 2];
    return r;
}
