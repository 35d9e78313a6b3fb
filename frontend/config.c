/* config.c — binds `param` items: --set over config.json over the default.
 *
 * Config keys are dotted paths into nested objects ("rope_scaling.factor"),
 * tried in order: the parameter's own name, then each `from` key. A JSON
 * null counts as absent, which lets a checkpoint say "no rope scaling" and
 * get the parameter's `absent` value. Every error names the config file and
 * key, or the --set argument. */
#include "frontend/lower.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static SrcLoc config_loc(Lower *L) { return (SrcLoc){L->opt->config_path, 0, 0}; }

bool lw_config_load(Lower *L) {
    if (!L->opt->config_path) return true;
    size_t len;
    char *text = read_file_text(L->a, L->d, L->opt->config_path, &len);
    if (!text) return false;
    diag_add_source(L->d, L->opt->config_path, text, len);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        /* Locate the failure: cJSON gives a pointer into the text. */
        const char *at = cJSON_GetErrorPtr();
        int line = 1, col = 1;
        if (at && at >= text && at <= text + len)
            for (const char *p = text; p < at; p++) {
                if (*p == '\n') { line++; col = 1; }
                else col++;
            }
        diag_error(L->d, ((SrcLoc){L->opt->config_path, line, col}), "malformed JSON");
        return false;
    }
    if (!cJSON_IsObject(root)) {
        diag_error(L->d, config_loc(L), "the config must be a JSON object");
        cJSON_Delete(root);
        return false;
    }
    L->config = root;
    return true;
}

void lw_config_free(Lower *L) {
    cJSON_Delete(L->config);
    L->config = NULL;
}

static const char *json_kind(const cJSON *j);

/* Follows a dotted key; NULL when absent or null. A part of the path that
 * is present but not an object ("rope_scaling": "yarn") is an error, once
 * per object, and sets *bad. */
static cJSON *config_get(Lower *L, const char *key, bool *bad) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", key);
    cJSON *cur = L->config;
    char *save = NULL;
    size_t at = 0; /* length of the path walked so far */
    for (char *part = strtok_r(buf, ".", &save); part && cur; part = strtok_r(NULL, ".", &save)) {
        if (cJSON_IsNull(cur)) return NULL;
        if (!cJSON_IsObject(cur)) {
            *bad = true;
            for (int i = 0; i < L->nbad_config; i++)
                if (L->bad_config[i] == cur) return NULL;
            if (L->nbad_config < 8) L->bad_config[L->nbad_config++] = cur;
            diag_error(L->d, ((SrcLoc){L->opt->config_path, 0, 0}), "key '%.*s': expected an object, got %s", (int)at - 1,
                       key, json_kind(cur));
            return NULL;
        }
        cur = cJSON_GetObjectItemCaseSensitive(cur, part);
        at += strlen(part) + 1;
    }
    return cur && !cJSON_IsNull(cur) ? cur : NULL;
}

bool lw_config_check_type(Lower *L, AstNode *model) {
    if (!L->config || model->list.n == 0) return true;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive((cJSON *)L->config, "model_type");
    if (!j || cJSON_IsNull(j)) return true; /* a config that does not say */
    SrcLoc loc = {L->opt->config_path, 0, 0};
    if (!cJSON_IsString(j)) {
        diag_error(L->d, loc, "key 'model_type': expected a string, got %s", json_kind(j));
        return false;
    }
    StrBuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < model->list.n; i++) {
        if (strcmp(model->list.v[i]->str, j->valuestring) == 0) {
            sb_free(&sb);
            return true;
        }
        sb_puts(&sb, i ? ", " : "");
        sb_put_quoted(&sb, model->list.v[i]->str);
    }
    StrBuf got;
    sb_init(&got);
    sb_put_quoted(&got, j->valuestring);
    diag_error(L->d, loc, "key 'model_type': this is a config of %s, but model %s describes %s", got.data, model->str,
               sb.data);
    diag_note(L->d, model->loc, "the model types %s describes are declared here", model->str);
    sb_free(&got);
    sb_free(&sb);
    return false;
}

typedef enum { P_INT, P_FLOAT, P_BOOL, P_STR } ParamType;

static bool param_type(const char *s, ParamType *t) {
    static const char *names[] = {"int", "float", "bool", "str"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) { *t = (ParamType)i; return true; }
    return false;
}

static const char *json_kind(const cJSON *j) {
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsBool(j)) return "a bool";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "null";
}

static bool from_json(Lower *L, const char *key, const cJSON *j, ParamType t, Value *out) {
    const char *file = L->opt->config_path;
    switch (t) {
    case P_INT: {
        double v = j->valuedouble;
        if (!cJSON_IsNumber(j) || v != floor(v) || fabs(v) > 9.0e15) {
            diag_error(L->d, config_loc(L), "key '%s': expected an integer, got %s", key,
                       cJSON_IsNumber(j) ? "a non-integral or too large number" : json_kind(j));
            return false;
        }
        *out = (Value){.k = V_INT, .u.i = (int64_t)v};
        return true;
    }
    case P_FLOAT:
        if (!cJSON_IsNumber(j)) break;
        *out = (Value){.k = V_FLOAT, .u.f = j->valuedouble};
        return true;
    case P_BOOL:
        if (!cJSON_IsBool(j)) break;
        *out = (Value){.k = V_BOOL, .u.b = cJSON_IsTrue(j)};
        return true;
    case P_STR:
        if (!cJSON_IsString(j)) break;
        *out = (Value){.k = V_STR, .u.s = arena_strdup(L->a, j->valuestring)};
        return true;
    }
    static const char *want[] = {"an integer", "a number", "true or false", "a string"};
    diag_error(L->d, ((SrcLoc){file, 0, 0}), "key '%s': expected %s, got %s", key, want[t], json_kind(j));
    return false;
}

static bool from_text(Lower *L, const FeSetting *set, ParamType t, Value *out) {
    const char *s = set->value;
    char *end;
    errno = 0;
    switch (t) {
    case P_INT: {
        long long v = strtoll(s, &end, 10);
        if (*s && !*end && errno == 0) { *out = (Value){.k = V_INT, .u.i = v}; return true; }
        break;
    }
    case P_FLOAT: {
        double v = strtod(s, &end);
        if (*s && !*end && errno == 0 && isfinite(v)) { *out = (Value){.k = V_FLOAT, .u.f = v}; return true; }
        break;
    }
    case P_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "1")) { *out = (Value){.k = V_BOOL, .u.b = true}; return true; }
        if (!strcmp(s, "false") || !strcmp(s, "0")) { *out = (Value){.k = V_BOOL, .u.b = false}; return true; }
        break;
    case P_STR:
        *out = (Value){.k = V_STR, .u.s = s};
        return true;
    }
    static const char *want[] = {"an integer", "a number", "true or false", "a string"};
    diag_error(L->d, ((SrcLoc){0}), "--set %s=%s: expected %s", set->name, s, want[t]);
    return false;
}

/* Checks a default or absent expression's value against the declared type. */
static bool coerce(Lower *L, AstNode *e, Value v, ParamType t, Value *out) {
    if (v.k == V_POISON) return false;
    if ((t == P_INT && v.k == V_INT) || (t == P_BOOL && v.k == V_BOOL) || (t == P_STR && v.k == V_STR)) {
        *out = v;
        return true;
    }
    if (t == P_FLOAT && (v.k == V_FLOAT || v.k == V_INT)) {
        *out = (Value){.k = V_FLOAT, .u.f = v.k == V_INT ? (double)v.u.i : v.u.f};
        return true;
    }
    static const char *names[] = {"int", "float", "bool", "str"};
    lw_error(L, e->loc, "a %s parameter cannot take %s", names[t], lw_kind_name(v.k));
    return false;
}

void lw_bind_param(Lower *L, AstNode *it) {
    ParamType t;
    Value v = {.k = V_POISON}, old;
    if (lw_lookup(L, L->globals, it->str, &old)) {
        lw_error(L, it->loc, "'%s' is already defined", it->str);
        return;
    }
    if (!param_type(it->str2, &t)) {
        lw_error(L, it->loc, "unknown parameter type '%s' (int, float, bool or str)", it->str2);
        lw_bind(L, L->globals, it->str, v);
        return;
    }
    bool bound = false;
    for (int i = L->opt->nsets - 1; i >= 0 && !bound; i--) /* the last --set wins */
        if (strcmp(L->opt->sets[i].name, it->str) == 0) {
            for (int k = 0; k < L->opt->nsets; k++)
                if (strcmp(L->opt->sets[k].name, it->str) == 0) L->set_used[k] = true;
            from_text(L, &L->opt->sets[i], t, &v);
            bound = true;
        }
    if (!bound && L->config) {
        bool bad = false;
        cJSON *j = config_get(L, it->str, &bad);
        const char *key = it->str;
        for (size_t k = 0; !j && k < it->list.n; k++) j = config_get(L, key = it->list.v[k]->str, &bad);
        if (bad) bound = true; /* reported; the param stays poison */
        else if (j) {
            from_json(L, key, j, t, &v);
            bound = true;
        } else if (it->b) {
            coerce(L, it->b, lw_eval(L, L->globals, it->b), t, &v);
            bound = true;
        }
    }
    if (!bound) coerce(L, it->a, lw_eval(L, L->globals, it->a), t, &v);
    lw_bind(L, L->globals, it->str, v);
    ARENA_PUSH(L->a, L->params, L->nparams, L->capparams, it->str);
}

/* Levenshtein distance, capped; for "did you mean" hints. */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return 99;
    int prev[65], cur[65];
    for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int c = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < c) c = prev[j] + 1;
            if (cur[j - 1] + 1 < c) c = cur[j - 1] + 1;
            cur[j] = c;
        }
        memcpy(prev, cur, sizeof(int) * (m + 1));
    }
    return prev[m];
}

void lw_check_unused_sets(Lower *L) {
    for (int i = 0; i < L->opt->nsets; i++) {
        if (L->set_used[i]) continue;
        const char *best = NULL;
        int bd = 3;
        for (size_t k = 0; k < L->nparams; k++) {
            int dd = edit_distance(L->opt->sets[i].name, L->params[k]);
            if (dd < bd) { bd = dd; best = L->params[k]; }
        }
        if (best) diag_error(L->d, ((SrcLoc){0}), "--set: no parameter named '%s'; did you mean '%s'?", L->opt->sets[i].name, best);
        else diag_error(L->d, ((SrcLoc){0}), "--set: no parameter named '%s'", L->opt->sets[i].name);
    }
}
