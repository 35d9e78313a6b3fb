/* kernel_cubins.c — the sm_90a cubin of every kernel file embedded in a
 * build (codegen/kernels/*.cuh with an entry point), each compiled on its
 * own under its stand-ins and its includes written in, as test_codegen's
 * test_kernel_files compiles it, written to DIR/<file>.cubin. tools/cubins.sh
 * builds it against a build's libdscc_core.a, so a change that must leave
 * the kernels alone can be checked on the compile-alone instances too.
 * usage: kernel_cubins DIR (DSCC_CACHE_DIR picks the kernel cache) */
#include "codegen/codegen.h"
#include "codegen/kernels.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: kernel_cubins DIR\n");
        return 2;
    }
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    CgOptions o = {0};
    int bad = 0;
    for (const CgKernelFile *f = cg_kernel_files; f->name; f++) {
        if (!strstr(f->text, "DSCC_ENTRY(")) continue; /* a prelude (hopper.cuh, args.cuh) */
        const char *entry = arena_printf(a, "g0_%s", f->name);
        CgSource src = {entry, cg_kernel_instance(a, f->name, entry, NULL, 0), {0}};
        CgBinary bin;
        if (cg_compile(a, d, &src, 1, &o, &bin) != 0) {
            bad++;
            continue;
        }
        const char *path = arena_printf(a, "%s/%s.cubin", argv[1], f->name);
        FILE *out = fopen(path, "wb");
        if (!out || fwrite(bin.data, 1, bin.size, out) != bin.size || fclose(out) != 0) {
            fprintf(stderr, "kernel_cubins: cannot write %s\n", path);
            bad++;
        }
        cg_binary_free(&bin);
    }
    arena_free(a);
    return bad ? 3 : 0;
}
