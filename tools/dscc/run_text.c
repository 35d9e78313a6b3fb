/* run_text.c — see run_text.h. */
#include "tools/dscc/run_text.h"

#include "runtime/chat_template.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int run_config_fp8(Arena *a, DiagEngine *d, const char *path) {
    size_t len;
    char *text = read_file_text(a, d, path, &len);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(root)) {
        diag_error(d, (SrcLoc){path, 0, 0}, "not a JSON object (a checkpoint's config.json)");
        cJSON_Delete(root);
        return -1;
    }
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    const cJSON *m = cJSON_IsObject(q) ? cJSON_GetObjectItemCaseSensitive(q, "quant_method") : NULL;
    int fp8 = cJSON_IsString(m) && strcmp(m->valuestring, "fp8") == 0;
    cJSON_Delete(root);
    return fp8;
}

bool run_prompt_ids(DiagEngine *d, const RtTokenizer *t, const char *text, bool raw, int32_t **ids, size_t *n) {
    if (raw) return rt_tok_encode(t, d, text, strlen(text), ids, n);
    const char *tpl = rt_tok_chat_template(t);
    if (!tpl) {
        diag_error(d, (SrcLoc){0}, "the tokenizer has no chat_template in tokenizer_config.json: give --raw to feed the prompt as is");
        return false;
    }
    RtChatMessage msg = {"user", text};
    char *r = rt_chat_render(d, tpl, &msg, 1, rt_tok_bos_text(t), rt_tok_eos_text(t), true);
    bool ok = r && rt_tok_encode(t, d, r, strlen(r), ids, n);
    free(r);
    return ok;
}

/* ---- sampling ---------------------------------------------------------------- */

void run_sampler_init(RunSampler *s, double temperature, double top_p, long top_k, uint64_t seed, uint64_t stream) {
    memset(s, 0, sizeof *s);
    s->temperature = temperature;
    s->top_p = top_p;
    s->top_k = top_k;
    s->seed = seed;
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + stream * 0xBF58476D1CE4E5B9ull + 0x94D049BB133111EBull; /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    s->state = (z ^ (z >> 31)) | 1;
}

void run_sampler_free(RunSampler *s) {
    free(s->prob);
    free(s->idx);
    s->prob = NULL;
    s->idx = NULL;
}

static double uniform(RunSampler *s) { /* [0, 1) */
    s->state ^= s->state >> 12;
    s->state ^= s->state << 25;
    s->state ^= s->state >> 27;
    return (double)((s->state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

static const float *g_sort_key;
static int by_prob(const void *x, const void *y) {
    float a = g_sort_key[*(const int32_t *)x], b = g_sort_key[*(const int32_t *)y];
    if (a != b) return a < b ? 1 : -1;
    return *(const int32_t *)x - *(const int32_t *)y; /* ties: the lower id first, as argmax */
}

RtSampling run_sampling(const RunSampler *s) { return (RtSampling){s->temperature, s->top_p, s->top_k, s->seed}; }

int64_t run_sample(RunSampler *s, const float *logits, int64_t V) {
    s->draws++;
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->temperature <= 0 || s->top_k == 1) return best;
    if (s->cap < V) {
        free(s->prob);
        free(s->idx);
        s->prob = malloc(sizeof(float) * (size_t)V);
        s->idx = malloc(sizeof(int32_t) * (size_t)V);
        if (!s->prob || !s->idx) return -1;
        s->cap = V;
    }
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        s->prob[i] = (float)exp((logits[i] - logits[best]) / s->temperature);
        sum += s->prob[i];
        s->idx[i] = (int32_t)i;
    }
    g_sort_key = s->prob;
    qsort(s->idx, (size_t)V, sizeof(int32_t), by_prob);
    int64_t k = s->top_k > 0 && s->top_k < V ? s->top_k : V;
    double kept = 0;
    int64_t n = 0;
    while (n < k) { /* top-p: the fewest most likely tokens whose mass reaches p */
        kept += s->prob[s->idx[n++]];
        if (kept >= s->top_p * sum) break;
    }
    double u = uniform(s) * kept, acc = 0;
    for (int64_t i = 0; i < n; i++) {
        acc += s->prob[s->idx[i]];
        if (u < acc) return s->idx[i];
    }
    return s->idx[n - 1];
}

/* ---- streamed text --------------------------------------------------------------- */

size_t run_utf8_complete(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return need > back + 1 ? i - 1 : n; /* an incomplete last character waits for its bytes */
}

void run_stream_init(RunStream *s, const char *stop, FILE *out) {
    memset(s, 0, sizeof *s);
    sb_init(&s->text);
    s->stop = stop && *stop ? stop : NULL;
    s->out = out;
}

static void show(RunStream *s, size_t upto) {
    if (upto <= s->shown) return;
    if (s->out) {
        fwrite(s->text.data + s->shown, 1, upto - s->shown, s->out);
        fflush(s->out);
    }
    s->shown = upto;
}

void run_stream_add(RunStream *s, const char *piece, size_t len) {
    if (s->stopped) return;
    size_t from = s->text.len;
    sb_putn(&s->text, piece, len);
    size_t cut = run_utf8_complete(s->text.data, s->text.len);
    if (s->stop) {
        size_t sl = strlen(s->stop), start = from >= sl ? from - sl + 1 : 0;
        char *hit = NULL;
        for (size_t i = start; i + sl <= s->text.len && !hit; i++)
            if (memcmp(s->text.data + i, s->stop, sl) == 0) hit = s->text.data + i;
        if (hit) {
            s->text.len = (size_t)(hit - s->text.data);
            s->text.data[s->text.len] = 0;
            s->stopped = true;
            show(s, s->text.len);
            return;
        }
        size_t hold = s->text.len >= sl - 1 ? s->text.len - (sl - 1) : 0; /* might begin the stop string */
        if (hold < cut) cut = hold;
        while (cut > s->shown && cut < s->text.len && ((unsigned char)s->text.data[cut] & 0xC0) == 0x80) cut--;
    }
    show(s, cut);
}

void run_stream_finish(RunStream *s) { show(s, s->text.len); }

void run_stream_free(RunStream *s) { sb_free(&s->text); }

/* ---- JSON ------------------------------------------------------------------------ */

static cJSON *id_array(const int32_t *ids, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

/* The text with each invalid UTF-8 sequence replaced by U+FFFD (as
 * `tokenizers` decodes), so the JSON is valid; malloc'd. */
char *run_utf8_valid(const char *s) {
    StrBuf sb;
    sb_init(&sb);
    sb_putc(&sb, 0);
    sb.len = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t need = *p < 0x80 ? 1 : *p >= 0xC2 && *p < 0xE0 ? 2 : *p >= 0xE0 && *p < 0xF0 ? 3 : *p >= 0xF0 && *p < 0xF5 ? 4 : 0;
        size_t k = 1;
        while (need && k < need && (p[k] & 0xC0) == 0x80) k++;
        bool ok = need && k == need;
        if (ok && need == 3) ok = !(p[0] == 0xE0 && p[1] < 0xA0) && !(p[0] == 0xED && p[1] >= 0xA0);
        if (ok && need == 4) ok = !(p[0] == 0xF0 && p[1] < 0x90) && !(p[0] == 0xF4 && p[1] >= 0x90);
        if (ok) sb_putn(&sb, (const char *)p, need), p += need;
        else sb_puts(&sb, "\xEF\xBF\xBD"), p += need && k < need ? k : 1;
    }
    return sb.data;
}

bool run_print_json(FILE *out, const int32_t *prompt, size_t np, const int32_t *gen, size_t ng, const char *text,
                    const char *stop_reason, const RunTimings *t) {
    cJSON *o = cJSON_CreateObject(), *tm = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "prompt_ids", id_array(prompt, np));
    cJSON_AddItemToObject(o, "output_ids", id_array(gen, ng));
    char *valid = run_utf8_valid(text);
    cJSON_AddStringToObject(o, "text", valid ? valid : "");
    free(valid);
    cJSON_AddStringToObject(o, "stop_reason", stop_reason);
    cJSON_AddNumberToObject(tm, "load_s", t->load_s);
    cJSON_AddNumberToObject(tm, "compile_s", t->compile_s);
    cJSON_AddNumberToObject(tm, "time_to_first_token_s", t->ttft_s);
    cJSON_AddNumberToObject(tm, "prefill_tokens", (double)t->prefill_tokens);
    cJSON_AddNumberToObject(tm, "prefill_tokens_per_s", t->prefill_tps);
    cJSON_AddNumberToObject(tm, "decode_tokens", (double)t->decode_tokens);
    cJSON_AddNumberToObject(tm, "decode_tokens_per_s", t->decode_tps);
    cJSON_AddItemToObject(o, "timings", tm);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return false;
    bool ok = fprintf(out, "%s\n", s) > 0 && fflush(out) == 0;
    cJSON_free(s);
    return ok;
}
