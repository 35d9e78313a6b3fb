/* tokenizer.c — byte-level BPE as Hugging Face `tokenizers` runs it for
 * DeepSeek-V3 (see tokenizer.h).
 *
 * Encoding: added tokens are cut out of the raw text first (leftmost-
 * longest, non-normalized tokens before normalized ones, as tokenizers'
 * AddedVocabulary does); each remaining segment goes through the Split
 * regexes in order, every piece of one split re-split by the next
 * ("Isolated": matches and the gaps between them both become pieces); each
 * piece's bytes then start as one symbol per byte (ByteLevel maps bytes to
 * vocabulary entries one to one) and BPE merges the lowest-ranked adjacent
 * pair first, leftmost among equals, through a binary heap, so a 1 MB run
 * of spaces costs n log n and not n^2. Merges are keyed on id pairs. */
#include "runtime/tokenizer.h"

#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *text; /* UTF-8 as written in tokenizer.json */
    size_t len;
    int32_t id;
    bool normalized;
} AddedTok;

typedef struct {
    uint64_t key;   /* (left id << 32 | right id) + 1; 0 = empty slot */
    int32_t rank, id;
} MergeSlot;

struct RtTokenizer {
    Arena *a;
    int32_t byte_id[256];   /* the vocabulary id of each byte's ByteLevel character */
    const char **piece;     /* per id: its bytes (NUL-terminated; NULL = no such id) */
    size_t *piece_len;
    int32_t max_id;
    MergeSlot *merge;
    size_t merge_cap;       /* a power of two */
    pcre2_code **split;
    int nsplit;
    AddedTok *added;        /* by first byte, then longest first */
    int nadded;
    int start[257];         /* added[start[b] .. start[b+1]) begin with byte b */
    int32_t bos, eos;
    const char *bos_text, *eos_text, *chat_template;
};

/* ---- ByteLevel's byte <-> character table (GPT-2's) ----------------------- */

static bool byte_printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

/* The code point ByteLevel writes for byte b. */
static uint32_t byte_char(int b) {
    if (byte_printable(b)) return (uint32_t)b;
    uint32_t n = 0;
    for (int i = 0; i < b; i++) n += !byte_printable(i);
    return 256 + n;
}

/* Decodes one UTF-8 character at s[0..len); its length, or 0 if invalid. */
static int utf8_next(const unsigned char *s, size_t len, uint32_t *cp) {
    if (len == 0) return 0;
    unsigned c = s[0];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || (size_t)n > len) return 0;
    uint32_t v = n == 1 ? c : c & (0x7fu >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return n;
}

/* Byte offset of the first invalid UTF-8 sequence, or len if none. */
static size_t utf8_invalid_at(const char *s, size_t len) {
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        int n = utf8_next((const unsigned char *)s + i, len - i, &cp);
        if (!n) return i;
        i += (size_t)n;
    }
    return len;
}

/* A vocabulary entry's ByteLevel text back to bytes; false if some
 * character is not one ByteLevel writes. */
static bool bytelevel_decode(const char *s, size_t len, char *out, size_t *outlen) {
    static int16_t back[512];
    static bool ready;
    if (!ready) { /* idempotent: racing threads write the same values */
        for (int i = 0; i < 512; i++) back[i] = -1;
        for (int b = 0; b < 256; b++) back[byte_char(b)] = (int16_t)b;
        ready = true;
    }
    size_t o = 0;
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        int n = utf8_next((const unsigned char *)s + i, len - i, &cp);
        if (!n || cp >= 512 || back[cp] < 0) return false;
        out[o++] = (char)back[cp];
        i += (size_t)n;
    }
    *outlen = o;
    return true;
}

/* ---- the merge table -------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* The slot of pair (l, r): its entry, or the empty slot it would take. */
static MergeSlot *merge_slot(const RtTokenizer *t, int32_t l, int32_t r) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
    for (size_t i = mix64(key) & (t->merge_cap - 1);; i = (i + 1) & (t->merge_cap - 1))
        if (t->merge[i].key == key || t->merge[i].key == 0) return &t->merge[i];
}

static bool merge_find(const RtTokenizer *t, int32_t l, int32_t r, int32_t *rank, int32_t *id) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
    const MergeSlot *s = merge_slot(t, l, r);
    if (s->key != key) return false;
    *rank = s->rank;
    *id = s->id;
    return true;
}

/* ---- loading ---------------------------------------------------------------- */

/* The vocabulary's ByteLevel strings -> ids: a StrMap of int32_t. */
static int32_t vocab_id(const StrMap *m, const char *s, size_t n) {
    const int32_t *id = strmap_getn(m, s, n);
    return id ? *id : -1;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

static const char *json_str(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define TOK_FAIL(...)                                                           \
    do {                                                                        \
        diag_error(d, ((SrcLoc){path, 0, 0}), __VA_ARGS__);                     \
        return false;                                                           \
    } while (0)

/* Checks that the model is the byte-level BPE this file implements. */
static bool check_config(DiagEngine *d, const char *path, const cJSON *root) {
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
        const char *ty = json_str(norm, "type");
        if (!ty || strcmp(ty, "Sequence") != 0 || cJSON_GetArraySize(list) != 0)
            TOK_FAIL("normalizer: only none (or an empty Sequence) is supported, as DeepSeek-V3 has");
    }
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !cJSON_IsNull(dec) && (!json_str(dec, "type") || strcmp(json_str(dec, "type"), "ByteLevel") != 0))
        TOK_FAIL("decoder: only ByteLevel is supported");
    /* a post-processor that adds tokens (TemplateProcessing's BOS, ...) makes
     * tokenizers' encode differ; ByteLevel's only moves offsets */
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (post && !cJSON_IsNull(post) && (!json_str(post, "type") || strcmp(json_str(post, "type"), "ByteLevel") != 0))
        TOK_FAIL("post_processor: only ByteLevel (or none) is supported; %s would add tokens",
                 json_str(post, "type") ? json_str(post, "type") : "this one");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(m) || !json_str(m, "type") || strcmp(json_str(m, "type"), "BPE") != 0)
        TOK_FAIL("model.type: only BPE is supported");
    const cJSON *bf = cJSON_GetObjectItemCaseSensitive(m, "byte_fallback");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    const char *pre = json_str(m, "continuing_subword_prefix"), *suf = json_str(m, "end_of_word_suffix");
    if (cJSON_IsTrue(bf) || (dr && !cJSON_IsNull(dr)) || (pre && *pre) || (suf && *suf))
        TOK_FAIL("model: byte_fallback, dropout, continuing_subword_prefix and end_of_word_suffix are not supported");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "ignore_merges")))
        TOK_FAIL("model.ignore_merges: true is not supported (whole words in the vocabulary would skip BPE)");
    return true;
}

/* The pre-tokenizer: Split regexes (Isolated, not inverted), then ByteLevel
 * without its own regex and without a prefix space. */
static bool load_pretokenizer(RtTokenizer *t, DiagEngine *d, const char *path, const cJSON *root) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (!cJSON_IsObject(p) || !json_str(p, "type") || strcmp(json_str(p, "type"), "Sequence") != 0 || !cJSON_IsArray(list))
        TOK_FAIL("pre_tokenizer: expected a Sequence of Split regexes ending in ByteLevel");
    int n = cJSON_GetArraySize(list);
    t->split = arena_alloc(t->a, sizeof(pcre2_code *) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_GetArrayItem(list, i);
        const char *ty = json_str(s, "type");
        if (ty && strcmp(ty, "ByteLevel") == 0 && i == n - 1) {
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "add_prefix_space")) ||
                !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(s, "use_regex")))
                TOK_FAIL("pre_tokenizer %d: ByteLevel with add_prefix_space or use_regex is not supported", i);
            return true;
        }
        const char *re = json_str(cJSON_GetObjectItemCaseSensitive(s, "pattern"), "Regex");
        const char *beh = json_str(s, "behavior");
        if (!ty || strcmp(ty, "Split") != 0 || !re || !beh || strcmp(beh, "Isolated") != 0 ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "invert")))
            TOK_FAIL("pre_tokenizer %d: only Split with a Regex, behavior Isolated and no invert is supported", i);
        int err;
        PCRE2_SIZE off;
        pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
        if (!c) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            TOK_FAIL("pre_tokenizer %d: regex does not compile at offset %zu: %s", i, (size_t)off, (const char *)msg);
        }
        pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); /* interpreted when JIT is unavailable */
        t->split[t->nsplit++] = c;
    }
    TOK_FAIL("pre_tokenizer: the Sequence must end in ByteLevel");
}

/* Vocabulary: id -> bytes, and the byte symbols; `m` gets string -> id. */
static bool load_vocab(RtTokenizer *t, DiagEngine *d, const char *path, const cJSON *vocab, StrMap *m) {
    if (!cJSON_IsObject(vocab)) TOK_FAIL("model.vocab: expected an object of token -> id");
    t->max_id = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e8 || e->valuedouble != (double)e->valueint)
            TOK_FAIL("model.vocab: token %s: id must be an integer in 0..100000000", e->string);
        if (e->valueint > t->max_id) t->max_id = e->valueint;
        bool fresh;
        int32_t *id = strmap_put(m, e->string, &fresh);
        if (fresh) *id = e->valueint; /* a token given twice keeps its first id */
    }
    size_t ids = (size_t)t->max_id + 1 + 4096;
    t->piece = arena_alloc(t->a, sizeof(const char *) * ids);
    t->piece_len = arena_alloc(t->a, sizeof(size_t) * ids);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        size_t len = strlen(e->string), out;
        char *b = arena_alloc(t->a, len + 1);
        if (t->piece[e->valueint]) TOK_FAIL("model.vocab: id %d is given twice", e->valueint);
        if (!bytelevel_decode(e->string, len, b, &out)) { /* an added token's text (DeepSeek's ids 0-2): kept as written */
            memcpy(b, e->string, len);
            out = len;
        }
        t->piece[e->valueint] = b;
        t->piece_len[e->valueint] = out;
    }
    for (int b = 0; b < 256; b++) {
        char u[4];
        uint32_t c = byte_char(b);
        size_t k = c < 0x80 ? (u[0] = (char)c, 1) : (u[0] = (char)(0xc0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3f)), 2);
        t->byte_id[b] = vocab_id(m, u, k);
        if (t->byte_id[b] < 0) TOK_FAIL("model.vocab: byte 0x%02x has no token (a byte-level BPE has all 256)", b);
    }
    return true;
}

static bool load_merges(RtTokenizer *t, DiagEngine *d, const char *path, const cJSON *merges, const StrMap *m) {
    if (!cJSON_IsArray(merges)) TOK_FAIL("model.merges: expected an array");
    int n = cJSON_GetArraySize(merges), rank = 0;
    t->merge_cap = pow2_at_least((size_t)n * 2 + 1);
    t->merge = arena_alloc(t->a, sizeof(MergeSlot) * t->merge_cap);
    char *buf = NULL;
    size_t cap = 0;
    bool ok = true;
    for (const cJSON *e = merges->child; e && ok; e = e->next, rank++) {
        const char *l, *r;
        size_t ll, rl;
        if (cJSON_IsString(e)) { /* "left right" */
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                diag_error(d, (SrcLoc){path, 0, 0}, "model.merges[%d]: expected \"left right\"", rank);
                ok = false;
                break;
            }
            l = e->valuestring, ll = (size_t)(sp - l), r = sp + 1, rl = strlen(r);
        } else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            l = e->child->valuestring, ll = strlen(l), r = e->child->next->valuestring, rl = strlen(r);
        } else {
            diag_error(d, (SrcLoc){path, 0, 0}, "model.merges[%d]: expected a string or a pair of strings", rank);
            ok = false;
            break;
        }
        if (ll + rl + 1 > cap) buf = realloc(buf, cap = (ll + rl + 1) * 2);
        memcpy(buf, l, ll);
        memcpy(buf + ll, r, rl);
        int32_t li = vocab_id(m, l, ll), ri = vocab_id(m, r, rl), id = vocab_id(m, buf, ll + rl);
        if (li < 0 || ri < 0 || id < 0) {
            diag_error(d, (SrcLoc){path, 0, 0}, "model.merges[%d]: '%.*s' + '%.*s' are not all in the vocabulary", rank, (int)ll,
                       l, (int)rl, r);
            ok = false;
            break;
        }
        MergeSlot *s = merge_slot(t, li, ri);
        if (s->key == 0) *s = (MergeSlot){((uint64_t)(uint32_t)li << 32 | (uint32_t)ri) + 1, rank, id};
    }
    free(buf);
    return ok;
}

static int added_cmp(const void *x, const void *y) {
    const AddedTok *a = x, *b = y;
    int fa = (unsigned char)a->text[0], fb = (unsigned char)b->text[0];
    if (fa != fb) return fa - fb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return strcmp(a->text, b->text);
}

static bool load_added(RtTokenizer *t, DiagEngine *d, const char *path, const cJSON *list) {
    if (!list || cJSON_IsNull(list)) return true;
    if (!cJSON_IsArray(list)) TOK_FAIL("added_tokens: expected an array");
    t->added = arena_alloc(t->a, sizeof(AddedTok) * (size_t)(cJSON_GetArraySize(list) + 1));
    for (const cJSON *e = list->child; e; e = e->next) {
        const char *s = json_str(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!s || !*s || !cJSON_IsNumber(id) || id->valueint < 0 || id->valueint > t->max_id + 4095)
            TOK_FAIL("added_tokens[%d]: needs a non-empty content and an id within 4,096 of the vocabulary", t->nadded);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "lstrip")) ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "rstrip")) ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "single_word")))
            TOK_FAIL("added_tokens[%d] '%s': lstrip, rstrip and single_word are not supported", t->nadded, s);
        size_t len = strlen(s);
        t->added[t->nadded++] = (AddedTok){arena_strdup(t->a, s), len, id->valueint,
                                           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "normalized"))};
        t->piece[id->valueint] = t->added[t->nadded - 1].text; /* decoding writes an added token's content */
        t->piece_len[id->valueint] = len;
    }
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].id > t->max_id) t->max_id = t->added[i].id;
    /* bucket by first byte, longest first, so the first hit at a position is the longest */
    qsort(t->added, (size_t)t->nadded, sizeof(AddedTok), added_cmp);
    int k = 0;
    for (int b = 0; b < 256; b++) {
        t->start[b] = k;
        while (k < t->nadded && (unsigned char)t->added[k].text[0] == b) k++;
    }
    t->start[256] = k;
    return true;
}

/* A config's bos_token / eos_token: a string or an AddedToken object. */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    return cJSON_IsObject(v) ? json_str(v, "content") : NULL;
}

static int32_t added_id(const RtTokenizer *t, const char *s) {
    for (int i = 0; s && i < t->nadded; i++)
        if (strcmp(t->added[i].text, s) == 0) return t->added[i].id;
    return -1;
}

static void load_config(RtTokenizer *t, DiagEngine *d, const char *dir) {
    char *path = arena_printf(t->a, "%s/tokenizer_config.json", dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) return; /* optional */
    fclose(probe);
    size_t len;
    char *text = read_file_text(t->a, d, path, &len);
    cJSON *c = text ? cJSON_ParseWithLength(text, len) : NULL;
    if (!c) {
        if (text) diag_warning(d, (SrcLoc){path, 0, 0}, "not valid JSON; no bos, eos or chat template");
        return;
    }
    const char *bos = token_text(cJSON_GetObjectItemCaseSensitive(c, "bos_token"));
    const char *eos = token_text(cJSON_GetObjectItemCaseSensitive(c, "eos_token"));
    const char *tpl = json_str(c, "chat_template");
    t->bos = added_id(t, bos);
    t->eos = added_id(t, eos);
    t->bos_text = arena_strdup(t->a, t->bos >= 0 ? bos : "");
    t->eos_text = arena_strdup(t->a, t->eos >= 0 ? eos : "");
    t->chat_template = tpl ? arena_strdup(t->a, tpl) : NULL;
    cJSON_Delete(c);
}

RtTokenizer *rt_tok_load(DiagEngine *d, const char *dir) {
    Arena *a = arena_new();
    if (!a) return NULL;
    RtTokenizer *t = arena_alloc(a, sizeof *t);
    t->a = a;
    t->bos = t->eos = -1;
    t->bos_text = t->eos_text = "";
    const char *path = arena_printf(a, "%s/tokenizer.json", dir);
    size_t len;
    char *text = read_file_text(a, d, path, &len);
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    if (text && !root) diag_error(d, (SrcLoc){path, 0, 0}, "not valid JSON");
    Arena *tmp = arena_new(); /* the vocabulary map, while loading */
    StrMap m;
    strmap_init(&m, tmp, sizeof(int32_t));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    bool ok = root && check_config(d, path, root) && load_pretokenizer(t, d, path, root) &&
              load_vocab(t, d, path, cJSON_GetObjectItemCaseSensitive(model, "vocab"), &m) &&
              load_merges(t, d, path, cJSON_GetObjectItemCaseSensitive(model, "merges"), &m) &&
              load_added(t, d, path, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"));
    arena_free(tmp);
    cJSON_Delete(root);
    if (!ok) {
        rt_tok_free(t);
        return NULL;
    }
    load_config(t, d, dir);
    return t;
}

void rt_tok_free(RtTokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->nsplit; i++) pcre2_code_free(t->split[i]);
    arena_free(t->a);
}

/* ---- encoding ----------------------------------------------------------------- */

typedef struct {
    int32_t *v;
    size_t n, cap;
} Ids;

static void ids_push(Ids *o, int32_t id) {
    if (o->n == o->cap) o->v = realloc(o->v, sizeof(int32_t) * (o->cap = o->cap ? o->cap * 2 : 256));
    o->v[o->n++] = id;
}

typedef struct {
    int32_t rank, pos, id; /* merge `rank` of symbols pos and next[pos] into id */
} Cand;

static bool cand_less(Cand a, Cand b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

typedef struct {
    Cand *h;
    size_t n, cap;
} Heap;

static void heap_push(Heap *q, Cand c) {
    if (q->n == q->cap) q->h = realloc(q->h, sizeof(Cand) * (q->cap = q->cap ? q->cap * 2 : 64));
    size_t i = q->n++;
    for (; i > 0 && cand_less(c, q->h[(i - 1) / 2]); i = (i - 1) / 2) q->h[i] = q->h[(i - 1) / 2];
    q->h[i] = c;
}

static Cand heap_pop(Heap *q) {
    Cand top = q->h[0], last = q->h[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && cand_less(q->h[c + 1], q->h[c])) c++;
        if (!cand_less(q->h[c], last)) break;
        q->h[i] = q->h[c];
        i = c;
    }
    if (q->n) q->h[i] = last;
    return top;
}

typedef struct {
    int32_t *id, *prev, *next;
    size_t cap;
    Heap q;
} BpeWork;

static void bpe_try(const RtTokenizer *t, BpeWork *w, int32_t pos) {
    int32_t nx = w->next[pos], rank, id;
    if (nx >= 0 && merge_find(t, w->id[pos], w->id[nx], &rank, &id)) heap_push(&w->q, (Cand){rank, pos, id});
}

/* BPE over one pre-token's bytes. */
static void bpe_word(const RtTokenizer *t, BpeWork *w, const unsigned char *s, size_t n, Ids *out) {
    if (n > w->cap) {
        w->cap = n * 2;
        w->id = realloc(w->id, sizeof(int32_t) * w->cap);
        w->prev = realloc(w->prev, sizeof(int32_t) * w->cap);
        w->next = realloc(w->next, sizeof(int32_t) * w->cap);
    }
    for (size_t i = 0; i < n; i++) {
        w->id[i] = t->byte_id[s[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->q.n = 0;
    for (size_t i = 0; i + 1 < n; i++) bpe_try(t, w, (int32_t)i);
    while (w->q.n) {
        Cand c = heap_pop(&w->q);
        int32_t nx = w->next[c.pos], rank, id;
        if (w->id[c.pos] < 0 || nx < 0 || !merge_find(t, w->id[c.pos], w->id[nx], &rank, &id) || id != c.id) continue;
        w->id[c.pos] = c.id; /* symbol nx joins c.pos */
        w->id[nx] = -1;
        w->next[c.pos] = w->next[nx];
        if (w->next[nx] >= 0) w->prev[w->next[nx]] = c.pos;
        if (w->prev[c.pos] >= 0) bpe_try(t, w, w->prev[c.pos]);
        bpe_try(t, w, c.pos);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = w->next[i]) ids_push(out, w->id[i]);
}

typedef struct {
    size_t off, len;
} Span;

typedef struct {
    Span *v;
    size_t n, cap;
} Spans;

static void spans_push(Spans *s, size_t off, size_t len) {
    if (!len) return;
    if (s->n == s->cap) s->v = realloc(s->v, sizeof(Span) * (s->cap = s->cap ? s->cap * 2 : 64));
    s->v[s->n++] = (Span){off, len};
}

/* Splits each span of `in` by regex `re` into matches and gaps (Isolated). */
static bool split_isolated(DiagEngine *d, const pcre2_code *re, pcre2_match_data *md, const char *text, const Spans *in,
                           Spans *out) {
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        const char *s = text + in->v[k].off;
        size_t len = in->v[k].len, at = 0, from = 0;
        while (from < len) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                diag_error(d, (SrcLoc){0}, "tokenizer: regex match failed: %s", (const char *)msg);
                return false;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[1] == ov[0]) { /* an empty match splits nothing; step one character */
                uint32_t cp;
                int n = utf8_next((const unsigned char *)s + ov[1], len - ov[1], &cp);
                from = ov[1] + (size_t)(n ? n : 1);
                continue;
            }
            spans_push(out, in->v[k].off + at, ov[0] - at);
            spans_push(out, in->v[k].off + ov[0], ov[1] - ov[0]);
            at = from = ov[1];
        }
        spans_push(out, in->v[k].off + at, len - at);
    }
    return true;
}

/* Pre-tokenizes and BPE-encodes one segment with no added token in it. */
static bool encode_plain(const RtTokenizer *t, DiagEngine *d, const char *text, size_t off, size_t len, BpeWork *w,
                         Ids *out) {
    Spans a = {0}, b = {0};
    spans_push(&a, off, len);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    bool ok = true;
    for (int i = 0; i < t->nsplit && ok; i++) {
        ok = split_isolated(d, t->split[i], md, text, &a, &b);
        Spans tmp = a;
        a = b;
        b = tmp;
    }
    for (size_t k = 0; ok && k < a.n; k++) bpe_word(t, w, (const unsigned char *)text + a.v[k].off, a.v[k].len, out);
    pcre2_match_data_free(md);
    free(a.v);
    free(b.v);
    return ok;
}

/* The longest added token of the given kind at text[i..len), or -1. */
static int added_at(const RtTokenizer *t, bool normalized, const char *text, size_t i, size_t len) {
    unsigned char c = (unsigned char)text[i];
    for (int k = t->start[c]; k < t->start[c + 1]; k++) {
        const AddedTok *a = &t->added[k];
        if (a->normalized == normalized && a->len <= len - i && memcmp(a->text, text + i, a->len) == 0) return k;
    }
    return -1;
}

/* Cuts the added tokens of one kind out of text[off..off+len); the rest goes
 * on to `next` (the normalized tokens' pass, then plain encoding). */
static bool encode_added(const RtTokenizer *t, DiagEngine *d, const char *text, size_t off, size_t len, bool normalized,
                         BpeWork *w, Ids *out) {
    size_t start = off, end = off + len;
    for (size_t i = off; i < end; i++) {
        int k = added_at(t, normalized, text, i, end);
        if (k < 0) continue;
        if (i > start && !(normalized ? encode_plain(t, d, text, start, i - start, w, out)
                                      : encode_added(t, d, text, start, i - start, true, w, out)))
            return false;
        ids_push(out, t->added[k].id);
        i += t->added[k].len - 1;
        start = i + 1;
    }
    if (end > start)
        return normalized ? encode_plain(t, d, text, start, end - start, w, out)
                          : encode_added(t, d, text, start, end - start, true, w, out);
    return true;
}

bool rt_tok_encode(const RtTokenizer *t, DiagEngine *d, const char *text, size_t len, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    size_t bad = utf8_invalid_at(text, len);
    if (bad < len) {
        diag_error(d, (SrcLoc){0}, "tokenizer: the text is not valid UTF-8 (byte %zu, 0x%02x)", bad, (unsigned char)text[bad]);
        return false;
    }
    Ids out = {0};
    BpeWork w = {0};
    bool ok = encode_added(t, d, text, 0, len, false, &w, &out);
    free(w.id);
    free(w.prev);
    free(w.next);
    free(w.q.h);
    if (!ok) {
        free(out.v);
        return false;
    }
    *ids = out.v;
    *n = out.n;
    return true;
}

/* ---- decoding and accessors ------------------------------------------------------- */

const char *rt_tok_piece(const RtTokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id > t->max_id || !t->piece[id]) return NULL;
    *len = t->piece_len[id];
    return t->piece[id];
}

bool rt_tok_decode(const RtTokenizer *t, DiagEngine *d, const int32_t *ids, size_t n, StrBuf *out) {
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = rt_tok_piece(t, ids[i], &len);
        if (!p) {
            diag_error(d, (SrcLoc){0}, "detokenize: id %d (position %zu) is not in the tokenizer (ids 0..%d)", ids[i], i,
                       t->max_id);
            return false;
        }
        sb_putn(out, p, len);
    }
    return true;
}

int32_t rt_tok_max_id(const RtTokenizer *t) { return t->max_id; }
int32_t rt_tok_bos(const RtTokenizer *t) { return t->bos; }
int32_t rt_tok_eos(const RtTokenizer *t) { return t->eos; }
const char *rt_tok_bos_text(const RtTokenizer *t) { return t->bos_text; }
const char *rt_tok_eos_text(const RtTokenizer *t) { return t->eos_text; }
const char *rt_tok_chat_template(const RtTokenizer *t) { return t->chat_template; }
