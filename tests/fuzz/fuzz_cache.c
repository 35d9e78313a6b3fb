/* fuzz_cache.c — libFuzzer harness for the kernel-cache entry reader
 * (codegen/nvrtc.c): the input is written as an entry in a private
 * temporary folder and read back. Any bytes must be served as a binary or
 * refused (to be compiled again), never crash, overrun or allocate more
 * than the entry holds; a served binary lies within the entry's bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_dir();
    const char *path = fz_write("k-0123456789abcdef0123456789abcdef.cubin", data, size);
    CgBinary b;
    memset(&b, 0x5a, sizeof b);
    if (cg_cache_read(path, 0x0123456789abcdefull, 0x0123456789abcdefull, &b)) { /* the key the name says */
        if (!b.data || !b.from_cache || b.size == 0 || b.size > size) abort();
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < b.size; i++) sink ^= ((const uint8_t *)b.data)[i];
        (void)sink;
        if (memmem(data, size, b.data, b.size) == NULL) abort(); /* served bytes come from the entry */
    } else if (b.data) {
        abort(); /* refused: nothing left to free */
    }
    cg_binary_free(&b);
    return 0;
}
