/* gen_einsum.c — the einsum template: two operands, subscripts by letters;
 * one thread per output element looping over the contracted letters. */
#include "codegen/gen_internal.h"

#include <string.h>

bool cg_einsum(Gen *G, const IrNode *n) {
    const char *spec = ir_node_attr_str(n, "spec", "");
    const char *comma = strchr(spec, ','), *arrow = strstr(spec, "->");
    if (!comma || !arrow || arrow < comma) {
        G->why = "einsum spec must be 'ab,cd->ef'";
        return false;
    }
    const char *sub[2] = {spec, comma + 1}, *osub = arrow + 2;
    int len[2] = {(int)(comma - spec), (int)(arrow - comma - 1)};
    IrDim ext[26];
    bool seen[26] = {0}, in_out[26] = {0};
    StrBuf st[2][26];
    for (int k = 0; k < 2; k++) {
        const IrType *t = &n->ops[k]->type;
        if (len[k] != t->rank) {
            G->why = "einsum subscripts do not match the operand ranks";
            return false;
        }
        for (int l = 0; l < 26; l++) sb_init(&st[k][l]);
        for (int i = 0; i < len[k]; i++) {
            int l = sub[k][i] - 'a';
            if (l < 0 || l >= 26) {
                G->why = "einsum subscripts must be lowercase letters";
                return false;
            }
            seen[l] = true;
            ext[l] = t->dims[i];
            sb_printf(&st[k][l], "%s%s", st[k][l].len ? " + " : "", cg_dim(G, cg_suffix(t, i + 1)));
        }
    }
    for (int i = 0; osub[i]; i++)
        if (osub[i] >= 'a' && osub[i] <= 'z') in_out[osub[i] - 'a'] = true;
    int sa = cg_slot_value(G, n->ops[0]), sb2 = cg_slot_value(G, n->ops[1]), so = cg_slot_value(G, n);
    StrBuf body;
    sb_init(&body);
    sb_puts(&body, "    long long r = i, ia = 0, ib = 0;\n");
    for (int i = (int)strlen(osub) - 1; i >= 0; i--) {
        int l = osub[i] - 'a';
        sb_printf(&body, "    { const long long c = r %% %s; r /= %s; ia += c * (%s); ib += c * (%s); }\n", cg_dim(G, ext[l]),
                  cg_dim(G, ext[l]), st[0][l].len ? st[0][l].data : "0", st[1][l].len ? st[1][l].data : "0");
    }
    sb_puts(&body, "    float acc = 0.0f;\n");
    int depth = 0;
    for (int l = 0; l < 26; l++)
        if (seen[l] && !in_out[l]) {
            sb_printf(&body, "%*sfor (long long c%c = 0; c%c < %s; c%c++)\n", 4 + 4 * depth, "", 'a' + l, 'a' + l, cg_dim(G, ext[l]),
                      'a' + l);
            depth++;
        }
    StrBuf ia, ib;
    sb_init(&ia);
    sb_init(&ib);
    sb_puts(&ia, "ia");
    sb_puts(&ib, "ib");
    for (int l = 0; l < 26; l++)
        if (seen[l] && !in_out[l]) {
            if (st[0][l].len) sb_printf(&ia, " + c%c * (%s)", 'a' + l, st[0][l].data);
            if (st[1][l].len) sb_printf(&ib, " + c%c * (%s)", 'a' + l, st[1][l].data);
        }
    sb_printf(&body, "%*sacc += L%d(a, %s) * L%d(a, %s);\n", 4 + 4 * depth, "", sa, ia.data, sb2, ib.data);
    sb_printf(&body, "    S%d(a, i, acc);\n", so);
    cg_elem(G, n, ir_type_numel(&n->type), arena_printf(G->a, "einsum %s", spec), body.data);
    sb_free(&body);
    sb_free(&ia);
    sb_free(&ib);
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < 26; l++) sb_free(&st[k][l]);
    return true;
}

