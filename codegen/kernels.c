/* kernels.c — looks up the kernel files embedded from codegen/kernels/ and
 * instantiates one with its entry name and #define parameters. */
#include "codegen/kernels.h"
#include "codegen/codegen.h"

#include <string.h>

const char *cg_kernel_file(const char *name) {
    for (const CgKernelFile *f = cg_kernel_files; f->name; f++)
        if (strcmp(f->name, name) == 0) return f->text;
    return NULL;
}

char *cg_kernel_instance(Arena *a, const char *file, const char *entry, const CgDefine *defs, int ndefs) {
    const char *text = cg_kernel_file(file);
    if (!text) return NULL;
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "#define DSCC_ENTRY %s\n", entry);
    for (int i = 0; i < ndefs; i++) sb_printf(&b, "#define %s %s\n", defs[i].name, defs[i].value);
    sb_printf(&b, "// ---- codegen/kernels/%s.cuh\n", file);
    sb_puts(&b, text);
    char *out = arena_strdup(a, b.data);
    sb_free(&b);
    return out;
}

char *cg_template_rmsnorm_quant(Arena *a, const char *name) {
    return cg_kernel_instance(a, "rmsnorm_quant", name, NULL, 0);
}
