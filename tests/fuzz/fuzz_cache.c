/* fuzz_cache.c — libFuzzer harness for the kernel-cache entry reader
 * (codegen/nvrtc.c, cg_cache_read): an entry is a 40-byte header (magic,
 * 128-bit key, length, XXH64 of the cubin) and the cubin. The first input
 * byte picks how the entry is made from the rest, R:
 *   even: R is the entry as it stands (headers the fuzzer writes itself);
 *   odd:  a true header for R, then R, with one field then spoiled by
 *         (byte >> 1) % 6: 0 none, 1 magic, 2 key, 3 length, 4 XXH64,
 *         5 the entry cut short by one byte
 * (a checksum is out of a fuzzer's reach: this is how it gets past one).
 * It is written in a private temporary folder and read back for the key
 * its name says. Any entry must be served or refused, never crash, overrun
 * or allocate more than it holds. Served: the cubin the entry holds and an
 * ELF, exactly when the header was true and R starts with the ELF magic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "codegen/codegen.h"
#include "tests/fuzz/fuzz_util.h"

#define KEY_HI 0x0123456789abcdefull
#define KEY_LO 0xfedcba9876543210ull
#define NAME "k-0123456789abcdeffedcba9876543210.cubin"

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    fz_dir();
    const uint8_t *r = data + 1;
    size_t n = size - 1, len = n;
    int spoil = -1;
    const char *path;
    if (data[0] & 1) {
        uint8_t *e = malloc(40 + n);
        memcpy(e, "DSCCKC1\n", 8);
        put64(e + 8, KEY_HI);
        put64(e + 16, KEY_LO);
        put64(e + 24, n);
        put64(e + 32, XXH64(r, n, 0));
        if (n) memcpy(e + 40, r, n);
        spoil = (data[0] >> 1) % 6;
        len = 40 + n;
        if (spoil == 1) e[3] ^= 1;
        else if (spoil == 2) e[8 + (n % 16)] ^= 0x10;
        else if (spoil == 3) put64(e + 24, n + 1 + (n & 0xff));
        else if (spoil == 4) e[32 + (n % 8)] ^= 0x80;
        else if (spoil == 5 && len > 0) len--;
        path = fz_write(NAME, e, len);
        free(e);
    } else {
        path = fz_write(NAME, r, n);
    }
    CgBinary b;
    memset(&b, 0x5a, sizeof b);
    bool served = cg_cache_read(path, KEY_HI, KEY_LO, &b);
    if (served) {
        if (!b.data || !b.from_cache || b.size == 0 || b.size + 40 > len) abort();
        if (memcmp(b.data, "\177ELF", 4) != 0) abort(); /* only a cubin is served */
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < b.size; i++) sink ^= ((const uint8_t *)b.data)[i];
        (void)sink;
    } else if (b.data) {
        abort(); /* refused: nothing left to free */
    }
    if (spoil >= 0) {
        bool elf = n >= 4 && memcmp(r, "\177ELF", 4) == 0;
        if (served != (spoil == 0 && elf)) abort(); /* a true entry is served, a spoiled one never */
        if (served && (b.size != n || memcmp(b.data, r, n) != 0)) abort();
    }
    cg_binary_free(&b);
    return 0;
}
