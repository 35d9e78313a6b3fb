/* nvtx_log.c — an NVTX tool for tests: loaded by nvtx3 through
 * NVTX_INJECTION64_PATH, it writes every range push ("push NAME") and pop
 * ("pop") of the process to the file DSCC_NVTX_LOG names, one a line, as
 * Nsight Systems would see them. */
#include <nvtx3/nvToolsExt.h>

#include <stdio.h>
#include <stdlib.h>

static FILE *log_file;

static int push(const char *name) {
    fprintf(log_file, "push %s\n", name);
    fflush(log_file);
    return 0;
}

static int pop(void) {
    fprintf(log_file, "pop\n");
    fflush(log_file);
    return 0;
}

__attribute__((visibility("default"))) int InitializeInjectionNvtx2(NvtxGetExportTableFunc_t get) {
    const NvtxExportTableCallbacks *cb = (const NvtxExportTableCallbacks *)get(NVTX_ETID_CALLBACKS);
    NvtxFunctionTable table = NULL;
    unsigned int size = 0;
    const char *path = getenv("DSCC_NVTX_LOG");
    if (!cb || !path || !cb->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &table, &size) || size <= NVTX_CBID_CORE_RangePop ||
        !(log_file = fopen(path, "w")))
        return 0;
    *table[NVTX_CBID_CORE_RangePushA] = (NvtxFunctionPointer)push;
    *table[NVTX_CBID_CORE_RangePop] = (NvtxFunctionPointer)pop;
    return 1;
}
