/* speculative.c — `dscc run --speculative mtp`: DeepSeek-V3's MTP module
 * as the draft model of speculative decoding.
 *
 * Two graphs of the same DSL file, each with its own executor and KV cache:
 * the verify step (`--set mtp_hidden=true`: the main model, which also
 * outputs its last hidden state `hidden`) and the draft step (`--set
 * mtp_draft=true`: the MTP module alone; at position t it reads the main
 * model's hidden state h_t and the token x_{t+1}, and predicts x_{t+2}).
 *
 * Both caches always hold positions 0..n-1; x_n, the last token kept, is
 * not yet in them. Each row also has a candidate for x_{n+1}: a draft of
 * the MTP module, or a token already kept (see below). A step runs the
 * main model on [x_n, candidate] at positions n, n+1 and judges each row's
 * draft on its own: greedy keeps it when it is the main model's argmax at
 * n; sampling by the speculative-sampling rule (runtime/sample.h). A kept
 * draft gives the row two tokens (the draft and the main model's token at
 * n+1), a rejected one one (the main model's token at n, from the residual
 * distribution when sampling). The caches of a batch are one length, so
 * the batch advances by the smaller count: when every row kept two, both
 * caches gain n and n+1; otherwise the main cache is cut back to n+1 and a
 * row that kept two carries its second token as its next candidate, kept
 * without a test, so no verified token is discarded. The MTP module then
 * runs on exactly the positions the main cache gained (so its cache never
 * holds a rejected position) and drafts the candidates of the rows that
 * need one. Greedy output is that of plain greedy decoding, token for
 * token; sampled output is distributed as plain sampling. Without
 * --speculative, `--temperature` runs plain sampled decoding here (the
 * verify graph on one position per step, no draft). With --prompt the
 * one row's tokens become text as plain generation makes it (eos and
 * --stop end it), printed or in the JSON object of plain runs, which gains
 * the acceptance figures. */
#include "tools/dscc/speculative.h"

#include "cpu/cpu.h"
#include "runtime/gpu.h"
#include "runtime/runtime.h"
#include "runtime/sample.h"
#include "runtime/trace.h"
#include "tools/dscc/run_text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One step graph and its executor. */
typedef struct {
    IrGraph *g;
    CpuExec *cpu;
#ifdef DSCC_HAVE_NVRTC
    GpuExec *gpu;
#endif
} SpStep;

static bool sp_run(SpStep *x, const CpuInput *in, int n, DiagEngine *d) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) return gpu_exec_run(x->gpu, in, n, d);
#endif
    return cpu_exec_run(x->cpu, in, n, d);
}

static const float *sp_output(SpStep *x, const char *name, int *rank, int64_t *dims) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) return gpu_exec_output(x->gpu, name, rank, dims);
#endif
    return cpu_exec_output(x->cpu, name, rank, dims);
}

static bool sp_truncate(SpStep *x, int64_t len) {
#ifdef DSCC_HAVE_NVRTC
    if (x->gpu) return gpu_exec_truncate(x->gpu, len);
#endif
    return cpu_exec_truncate(x->cpu, len);
}

static void sp_free(SpStep *x) {
    cpu_exec_free(x->cpu);
#ifdef DSCC_HAVE_NVRTC
    gpu_exec_free(x->gpu);
#endif
}

/* The step graph of s->model with `set` added to its parameters, verified
 * and through the pass pipeline. NULL after reporting (*rc the exit code). */
static IrGraph *compile_step(Arena *a, DiagEngine *d, const SpecArgs *s, const char *config, const char *set, int64_t B,
                             int64_t S, int64_t ctx, int *rc) {
    ModelOpts mo = s->mo;
    mo.sets = arena_alloc(a, sizeof(FeSetting) * (size_t)(mo.nsets + 1));
    if (s->mo.nsets) memcpy(mo.sets, s->mo.sets, sizeof(FeSetting) * (size_t)s->mo.nsets);
    mo.cap = mo.nsets + 1;
    if (config) mo.config_path = config;
    *rc = DSCC_EXIT_USAGE;
    if (!driver_add_set(a, &mo, set)) return NULL;
    *rc = DSCC_EXIT_INPUT;
    FeOptions fo = driver_fe_options(&mo);
    IrGraph *g = fe_compile_file(a, d, s->model, &fo);
    if (!g || ir_verify(g, d)) return NULL;
    const char *dflt =
        pass_preset(a, "default", &(PassPreset){.fp8 = s->fp8, .batch = B, .seq = S, .ctx = ctx, .f32_storage = s->f32_storage});
    if ((*rc = driver_run_passes(a, d, g, s->po, dflt, false)) != DSCC_EXIT_OK) return NULL;
    return g;
}

/* A checkpoint asked for --speculative mtp must hold the MTP layer: the
 * draft graph's own tensors (those named after its eh_proj's layer). */
static bool check_mtp_weights(DiagEngine *d, const IrGraph *g, const RtCheckpoint *ck, const char *dir) {
    const char *prefix = NULL;
    size_t plen = 0;
    for (int i = 0; i < g->nnodes && !prefix; i++) {
        const char *name = g->nodes[i]->op == IR_OP_WEIGHT ? ir_node_attr_str(g->nodes[i], "name", "") : "";
        const char *at = strstr(name, ".eh_proj.weight");
        if (at && !at[strlen(".eh_proj.weight")]) prefix = name, plen = (size_t)(at - name) + 1;
    }
    static const char *const own[] = {"embed_tokens.weight", "enorm.weight", "hnorm.weight", "eh_proj.weight",
                                      "shared_head.norm.weight", "shared_head.head.weight"};
    char name[256];
    for (size_t k = 0; prefix && k < sizeof own / sizeof *own; k++) {
        snprintf(name, sizeof name, "%.*s%s", (int)plen, prefix, own[k]);
        if (!rt_checkpoint_find(ck, name, NULL)) {
            diag_error(d, (SrcLoc){dir, 0, 0},
                       "the checkpoint has no MTP layer: tensor '%s' is missing (--speculative mtp needs the "
                       "model.layers.{num_hidden_layers}.* tensors of a num_nextn_predict_layers >= 1 checkpoint)",
                       name);
            return false;
        }
    }
    return true;
}

/* tr: the trace both step graphs write ("verify ..." and "draft ..." steps; NULL: none). */
static bool make_exec(SpStep *x, const CpuWeightSource *ws, const SpecArgs *s, int64_t B, int64_t S, int64_t ctx, RtTrace *tr,
                      const char *label, DiagEngine *d) {
    if (s->cuda) {
#ifdef DSCC_HAVE_NVRTC
        GpuOptions go = {.device = (int)s->device, .max_batch = B, .max_seq = S, .max_ctx = ctx,
                         .f32_storage = s->f32_storage, .graphs = true, .tracer = tr, .trace_label = label,
                         .tune = &driver_tune};
        return (x->gpu = gpu_exec_new(x->g, ws, &go, d)) != NULL;
#endif
    }
    (void)tr, (void)label;
    CpuOptions co = {.threads = (int)s->threads};
    return (x->cpu = cpu_exec_new(x->g, ws, &co, d)) != NULL;
}

/* The decoding state (see the file comment). */
typedef struct {
    SpStep main, draft;
    int64_t B, P, N, V, H, cap;
    int64_t n;                 /* cached positions (both caches) */
    int64_t *seq, *len;        /* [B, cap] tokens kept per row, and how many */
    int64_t *cand;             /* [B] the draft for x_{n+1} (when len == n + 1) */
    float *q;                  /* [B, V] the draft distribution of each row's draft (sampling) */
    float *logits, *hidden;    /* copies of the last verify step's outputs */
    float *p, *tmp;            /* [V] scratch */
    double temperature;
    bool plain;                /* no draft model: plain (sampled) decoding */
    RtRng rng;
    int64_t steps, drafted, accepted;
    int64_t *row_drafted, *row_accepted; /* [B] */
    DiagEngine *d;
    const RtTokenizer *tk;     /* --prompt: row 0's tokens become text */
    RunStream st;
    int64_t ng;                /* tokens of row 0 taken into the text */
    const char *why;           /* what ended the text: "eos", "stop", "length" */
    RunTimings tm;
} Spec;

/* Runs x on S positions per row from position `pos`: tokens tok[B, S],
 * and h_main [B, S, H] when given. */
static bool run_step(Spec *sp, SpStep *x, int64_t S, const int64_t *tok, const float *h, int64_t hstride) {
    int64_t B = sp->B;
    float *t = malloc(sizeof(float) * (size_t)(B * S)), *p = malloc(sizeof(float) * (size_t)(B * S));
    float *hm = h ? malloc(sizeof(float) * (size_t)(B * S * sp->H)) : NULL;
    bool ok = t && p && (!h || hm);
    for (int64_t b = 0; ok && b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            t[b * S + s] = (float)tok[b * S + s];
            p[b * S + s] = (float)(sp->n + s);
            if (h) memcpy(hm + (b * S + s) * sp->H, h + (b * hstride + s) * sp->H, sizeof(float) * (size_t)sp->H);
        }
    CpuInput in[3] = {{"tokens", 2, {B, S}, t}, {"positions", 2, {B, S}, p}, {"h_main", 3, {B, S, sp->H}, hm}};
    if (!ok) diag_error(sp->d, (SrcLoc){0}, "out of host memory for a step's inputs");
    ok = ok && sp_run(x, in, h ? 3 : 2, sp->d);
    free(t);
    free(p);
    free(hm);
    return ok;
}

/* Output `name` of x's last run, checked to be [B, S, width]. */
static const float *get_output(Spec *sp, SpStep *x, const char *name, int64_t S, int64_t *width) {
    int rank = 0;
    int64_t dims[IR_MAX_RANK];
    const float *v = sp_output(x, name, &rank, dims);
    if (!v || rank != 3 || dims[0] != sp->B || dims[1] != S || (*width && dims[2] != *width)) {
        diag_error(sp->d, (SrcLoc){0}, "the %s step graph has no output '%s' of shape [%lld, %lld, %s]",
                   x == &sp->main ? "verify" : "draft", name, (long long)sp->B, (long long)S,
                   strcmp(name, "hidden") ? "vocab" : "hidden_size");
        return NULL;
    }
    for (int64_t i = 0; i < sp->B * S * dims[2]; i++)
        if (v[i] != v[i]) {
            diag_error(sp->d, (SrcLoc){0}, "output '%s' of the %s step holds a NaN (element %lld)", name,
                       x == &sp->main ? "verify" : "draft", (long long)i);
            return NULL;
        }
    *width = dims[2];
    return v;
}

/* The main model's token from logits l: argmax, or a draw at the temperature. */
static int64_t pick(Spec *sp, const float *l) {
    if (sp->temperature <= 0) return rt_argmax(l, sp->V);
    rt_softmax_t(l, sp->V, sp->temperature, sp->p);
    return rt_sample(sp->p, sp->V, &sp->rng);
}

/* Row b's draft from MTP logits l (its distribution kept for the test). */
static void draft_row(Spec *sp, int64_t b, const float *l) {
    if (sp->temperature <= 0) {
        sp->cand[b] = rt_argmax(l, sp->V);
        return;
    }
    float *q = sp->q + b * sp->V;
    rt_softmax_t(l, sp->V, sp->temperature, q);
    sp->cand[b] = rt_sample(q, sp->V, &sp->rng);
}

/* Copies the verify step's logits and hidden state of S positions. */
static bool take_verify(Spec *sp, int64_t S) {
    int64_t V = sp->V, H = sp->H;
    const float *l = get_output(sp, &sp->main, "logits", S, &V);
    if (!l) return false;
    sp->V = V;
    memcpy(sp->logits, l, sizeof(float) * (size_t)(sp->B * S * V));
    const float *h = get_output(sp, &sp->main, "hidden", S, &H);
    if (!h) return false;
    memcpy(sp->hidden, h, sizeof(float) * (size_t)(sp->B * S * H));
    return true;
}

/* The MTP module on positions n..n+S-1 (tokens x_{n+1..n+S}, the verify
 * step's hidden states of its first S positions, hstride per row); then
 * the caches advance by S and rows without a kept candidate get a draft. */
static bool run_draft(Spec *sp, int64_t S, int64_t hstride) {
    int64_t *tok = malloc(sizeof(int64_t) * (size_t)(sp->B * S));
    if (!tok) return false;
    for (int64_t b = 0; b < sp->B; b++)
        for (int64_t s = 0; s < S; s++) tok[b * S + s] = sp->seq[b * sp->cap + sp->n + 1 + s];
    bool ok = run_step(sp, &sp->draft, S, tok, sp->hidden, hstride);
    free(tok);
    int64_t V = sp->V;
    const float *l = ok ? get_output(sp, &sp->draft, "mtp_logits", S, &V) : NULL;
    if (!l) return false;
    sp->n += S;
    for (int64_t b = 0; b < sp->B; b++)
        if (sp->len[b] == sp->n + 1) draft_row(sp, b, l + (b * S + S - 1) * V);
    return true;
}

/* The prompt through both graphs: x_P from the main model, the first drafts. */
static bool prefill(Spec *sp, const float *prompt) {
    int64_t B = sp->B, P = sp->P;
    int64_t *tok = malloc(sizeof(int64_t) * (size_t)(B * P));
    if (!tok) return false;
    for (int64_t i = 0; i < B * P; i++) tok[i] = (int64_t)prompt[i];
    bool ok = run_step(sp, &sp->main, P, tok, NULL, 0);
    free(tok);
    int64_t V = 0, H = 0;
    const float *l = ok ? get_output(sp, &sp->main, "logits", P, &V) : NULL;
    const float *h = l ? get_output(sp, &sp->main, "hidden", P, &H) : NULL;
    if (!h) return false;
    sp->V = V;
    sp->H = H;
    sp->logits = malloc(sizeof(float) * (size_t)(B * (P > 2 ? P : 2) * V));
    sp->hidden = malloc(sizeof(float) * (size_t)(B * (P > 2 ? P : 2) * H));
    sp->q = malloc(sizeof(float) * (size_t)(B * V));
    sp->p = malloc(sizeof(float) * (size_t)V);
    sp->tmp = malloc(sizeof(float) * (size_t)V);
    if (!sp->logits || !sp->hidden || !sp->q || !sp->p || !sp->tmp) {
        diag_error(sp->d, (SrcLoc){0}, "out of host memory for the decoding state");
        return false;
    }
    memcpy(sp->hidden, h, sizeof(float) * (size_t)(B * P * H));
    for (int64_t b = 0; b < B; b++) {
        for (int64_t t = 0; t < P; t++) sp->seq[b * sp->cap + t] = (int64_t)prompt[b * P + t];
        sp->seq[b * sp->cap + P] = pick(sp, l + (b * P + P - 1) * V);
        if (!sp->tk) printf("row %lld: next token %lld\n", (long long)b, (long long)rt_argmax(l + (b * P + P - 1) * V, V));
        sp->len[b] = P + 1;
    }
    sp->n = 0; /* the draft runs on positions 0..P-1 */
    if (sp->plain) {
        sp->n = P;
        return true;
    }
    return run_draft(sp, P, P);
}

/* Plain decoding (no draft): the main model on x_n alone. */
static bool step_plain(Spec *sp) {
    int64_t B = sp->B, n = sp->n, *tok = malloc(sizeof(int64_t) * (size_t)B);
    if (!tok) return false;
    for (int64_t b = 0; b < B; b++) tok[b] = sp->seq[b * sp->cap + n];
    bool ok = run_step(sp, &sp->main, 1, tok, NULL, 0) && take_verify(sp, 1);
    free(tok);
    if (!ok) return false;
    for (int64_t b = 0; b < B; b++) sp->seq[b * sp->cap + sp->len[b]++] = pick(sp, sp->logits + b * sp->V);
    sp->n++;
    sp->steps++;
    return true;
}

/* One verify step and the draft step after it. */
static bool step(Spec *sp) {
    int64_t B = sp->B, n = sp->n, V = sp->V, *tok = malloc(sizeof(int64_t) * (size_t)(2 * B));
    if (!tok) return false;
    for (int64_t b = 0; b < B; b++) {
        tok[2 * b] = sp->seq[b * sp->cap + n];
        tok[2 * b + 1] = sp->len[b] == n + 2 ? sp->seq[b * sp->cap + n + 1] : sp->cand[b];
    }
    bool ok = run_step(sp, &sp->main, 2, tok, NULL, 0) && take_verify(sp, 2);
    free(tok);
    if (!ok) return false;
    bool all_two = true;
    for (int64_t b = 0; b < B; b++) {
        int64_t *row = sp->seq + b * sp->cap;
        const float *l0 = sp->logits + (b * 2) * V, *l1 = l0 + V;
        bool keep = sp->len[b] == n + 2; /* a kept candidate: no test */
        if (!keep) {
            sp->drafted++;
            sp->row_drafted[b]++;
            int64_t tok0;
            if (sp->temperature <= 0) {
                tok0 = rt_argmax(l0, V);
                keep = tok0 == sp->cand[b];
            } else {
                rt_softmax_t(l0, V, sp->temperature, sp->tmp);
                tok0 = rt_spec_accept(sp->tmp, sp->q + b * V, V, sp->cand[b], &sp->rng, &keep);
            }
            sp->accepted += keep;
            sp->row_accepted[b] += keep;
            row[n + 1] = tok0;
            sp->len[b] = n + 2;
        }
        if (keep) row[sp->len[b]++] = pick(sp, l1);
        all_two = all_two && sp->len[b] == n + 3;
    }
    sp->steps++;
    if (!all_two && !sp_truncate(&sp->main, n + 1)) {
        diag_error(sp->d, (SrcLoc){0}, "cannot roll the main model's KV cache back to %lld positions", (long long)(n + 1));
        return false;
    }
    return run_draft(sp, all_two ? 2 : 1, 2);
}

/* Tokens kept per verify step and row, past the prefill's token. */
static double tokens_per_step(const Spec *sp) {
    int64_t made = 0;
    for (int64_t b = 0; b < sp->B; b++) made += sp->len[b] - sp->P - 1;
    return sp->steps ? (double)made / (double)(sp->steps * sp->B) : 0.0;
}

static void report(const Spec *sp, bool cuda) {
    fprintf(stderr,
            "speculative mtp (%s backend): %lld x %lld new tokens in %lld verify steps, %.2f tokens per step per row; "
            "drafts accepted %lld of %lld (%.1f%%)\n",
            cuda ? "cuda" : "cpu", (long long)sp->B, (long long)(sp->tk ? sp->ng : sp->N), (long long)sp->steps,
            tokens_per_step(sp), (long long)sp->accepted, (long long)sp->drafted,
            sp->drafted ? 100.0 * (double)sp->accepted / (double)sp->drafted : 0.0);
    if (sp->B > 16) return;
    fprintf(stderr, "drafts accepted per row:");
    for (int64_t b = 0; b < sp->B; b++) fprintf(stderr, " %lld/%lld", (long long)sp->row_accepted[b], (long long)sp->row_drafted[b]);
    fprintf(stderr, "\n");
}

/* --prompt: row 0's new tokens into the text, as plain generation takes
 * them (an eos token counts but shows nothing); true once an eos, the stop
 * string or N tokens end it, or (with *bad) a token has no text. */
static bool take_text(Spec *sp, bool *bad) {
    int32_t eos = rt_tok_eos(sp->tk);
    while (sp->ng < sp->N && sp->P + sp->ng < sp->len[0]) {
        int64_t id = sp->seq[sp->P + sp->ng++];
        if (id == eos) return sp->why = "eos", true;
        size_t plen;
        const char *piece = id >= 0 && id <= INT32_MAX ? rt_tok_piece(sp->tk, (int32_t)id, &plen) : NULL;
        if (!piece) {
            diag_error(sp->d, (SrcLoc){0}, "the model generated token %lld, which the tokenizer does not have", (long long)id);
            return *bad = true;
        }
        run_stream_add(&sp->st, piece, plen);
        if (sp->st.stopped) return sp->why = "stop", true;
    }
    return sp->ng >= sp->N;
}

/* Whether every row has its N tokens (--prompt: the text is complete). */
static bool finished(Spec *sp, bool *bad) {
    if (sp->tk) return take_text(sp, bad);
    int64_t least = sp->len[0];
    for (int64_t b = 1; b < sp->B; b++) least = sp->len[b] < least ? sp->len[b] : least;
    return least - sp->P >= sp->N;
}

/* --output-format json: plain runs' object (run_print_json's, read back)
 * with the acceptance figures added as "speculative". */
static bool print_json(const Spec *sp) {
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(sp->P + sp->ng + 1));
    char *buf = NULL;
    size_t len = 0;
    FILE *m = ids ? open_memstream(&buf, &len) : NULL;
    for (int64_t i = 0; ids && i < sp->P + sp->ng; i++) ids[i] = (int32_t)sp->seq[i];
    bool ok = m && run_print_json(m, ids, (size_t)sp->P, ids + sp->P, (size_t)sp->ng, sp->st.text.data ? sp->st.text.data : "",
                                  sp->why, &sp->tm);
    if (m) fclose(m);
    free(ids);
    cJSON *o = ok ? cJSON_Parse(buf) : NULL, *spec = cJSON_CreateObject();
    free(buf);
    cJSON_AddStringToObject(spec, "draft", "mtp");
    cJSON_AddNumberToObject(spec, "verify_steps", (double)sp->steps);
    cJSON_AddNumberToObject(spec, "drafted", (double)sp->drafted);
    cJSON_AddNumberToObject(spec, "accepted", (double)sp->accepted);
    cJSON_AddNumberToObject(spec, "acceptance_rate", sp->drafted ? (double)sp->accepted / (double)sp->drafted : 0.0);
    cJSON_AddNumberToObject(spec, "tokens_per_step", tokens_per_step(sp));
    if (!o || !cJSON_AddItemToObject(o, "speculative", spec)) {
        cJSON_Delete(o);
        cJSON_Delete(spec);
        return false;
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    ok = text && printf("%s\n", text) > 0 && fflush(stdout) == 0;
    cJSON_free(text);
    return ok;
}

/* --prompt: the text (streamed so far) or the JSON object on stdout. */
static int print_text(Spec *sp, bool json) {
    if (json) return print_json(sp) ? DSCC_EXIT_OK : DSCC_EXIT_RUNTIME;
    run_stream_finish(&sp->st);
    return printf("\n") < 0 || fflush(stdout) ? DSCC_EXIT_RUNTIME : DSCC_EXIT_OK;
}

static int decode(Spec *sp, const float *prompt, bool cuda, bool json) {
    double t0 = driver_now();
    if (!prefill(sp, prompt)) return DSCC_EXIT_INPUT;
    double t1 = driver_now();
    bool bad = false;
    while (!finished(sp, &bad))
        if (!(sp->plain ? step_plain(sp) : step(sp))) return DSCC_EXIT_INPUT;
    if (bad) return DSCC_EXIT_INPUT;
    sp->tm.ttft_s = t1 - t0;
    sp->tm.prefill_tokens = sp->B * sp->P;
    sp->tm.prefill_tps = (double)sp->tm.prefill_tokens / (t1 - t0 > 0 ? t1 - t0 : 1e-9);
    sp->tm.decode_s = driver_now() - t1;
    sp->tm.decode_tokens = sp->tk ? sp->ng - 1 : sp->B * (sp->N - 1); /* the first came from the prefill */
    sp->tm.decode_tps = (double)sp->tm.decode_tokens / (sp->tm.decode_s > 0 ? sp->tm.decode_s : 1e-9);
    if (sp->tk) {
        int rc = print_text(sp, json);
        if (rc != DSCC_EXIT_OK) return rc;
        fprintf(stderr, "generated %lld tokens (stopped by %s)\n", (long long)sp->ng,
                strcmp(sp->why, "eos") == 0 ? "eos" : strcmp(sp->why, "stop") == 0 ? "--stop" : "--max-new-tokens");
    }
    for (int64_t b = 0; !sp->tk && b < sp->B; b++) {
        printf("row %lld generated:", (long long)b);
        for (int64_t t = sp->P; t < sp->P + sp->N; t++) printf(" %lld", (long long)sp->seq[b * sp->cap + t]);
        printf("\n");
    }
    fflush(stdout); /* the output before the summary, also when both go to one pipe */
    if (!sp->plain) report(sp, cuda);
    fprintf(stderr, "generated in %.3f s\n", driver_now() - t0);
    return DSCC_EXIT_OK;
}

static int setup_and_decode(Arena *a, DiagEngine *d, const SpecArgs *s, RtCheckpoint *ck, const RtArray *tok) {
    int64_t B = tok->shape[0], P = tok->shape[1], N = s->generate;
    int rc;
    const char *config = ck && !s->mo.config_path ? rt_checkpoint_config_path(ck) : NULL;
    Spec sp = {.B = B, .P = P, .N = N, .cap = P + N + 3, .temperature = s->temperature, .rng = rt_rng(s->sample_seed), .d = d,
               .tk = s->tk, .why = "length"};
    int64_t S = P > 2 ? P : 2, ctx = P + N + 2;
    double tc = driver_now();
    if (!(sp.main.g = compile_step(a, d, s, config, "mtp_hidden=true", B, S, ctx, &rc))) return rc;
    sp.plain = !s->speculative;
    if (!sp.plain && !(sp.draft.g = compile_step(a, d, s, config, "mtp_draft=true", B, S, ctx, &rc))) return rc;
    sp.tm.compile_s = driver_now() - tc;
    if (s->tk && !driver_check_vocab(d, s->tokenizer, rt_tok_max_id(s->tk), sp.main.g)) return DSCC_EXIT_INPUT;
    if (!sp.plain && ck && !check_mtp_weights(d, sp.draft.g, ck, s->weights)) return DSCC_EXIT_INPUT;
    CpuWeightSource ws = ck ? (CpuWeightSource){rt_checkpoint_read_f32, ck} : cpu_random_weights(&s->seed);
    rc = s->cuda ? DSCC_EXIT_RUNTIME : DSCC_EXIT_INPUT;
    sp.seq = calloc((size_t)(B * sp.cap), sizeof(int64_t));
    sp.len = calloc((size_t)B, sizeof(int64_t));
    sp.cand = calloc((size_t)B, sizeof(int64_t));
    sp.row_drafted = calloc((size_t)B, sizeof(int64_t));
    sp.row_accepted = calloc((size_t)B, sizeof(int64_t));
    RtTrace *tr = s->trace && s->cuda ? rt_trace_open(s->trace, s->trace_steps, d) : NULL;
    run_stream_init(&sp.st, s->stop, s->json ? NULL : stdout);
    double tl = driver_now();
    if (sp.seq && sp.len && sp.cand && sp.row_drafted && sp.row_accepted && (tr || !s->trace) &&
        make_exec(&sp.main, &ws, s, B, S, ctx, tr, "verify", d) && (sp.plain || make_exec(&sp.draft, &ws, s, B, S, ctx, tr, "draft", d))) {
        sp.tm.load_s = driver_now() - tl;
        rc = decode(&sp, tok->data, s->cuda, s->json);
    }
    run_stream_free(&sp.st);
    sp_free(&sp.main);
    sp_free(&sp.draft);
    rt_trace_close(tr, d);
    free(sp.seq);
    free(sp.len);
    free(sp.cand);
    free(sp.row_drafted);
    free(sp.row_accepted);
    free(sp.q);
    free(sp.p);
    free(sp.tmp);
    free(sp.logits);
    free(sp.hidden);
    return rc;
}

int spec_run_mtp(const SpecArgs *s) {
    Arena *a = arena_new();
    DiagEngine *d = diag_new(a, stderr);
    RtCheckpoint *ck = NULL;
    RtArray tok = {0};
    int rc = DSCC_EXIT_INPUT;
    if (s->weights && !(ck = rt_checkpoint_open(a, d, s->weights))) goto done;
    if (s->prompt) {
        rc = setup_and_decode(a, d, s, ck, s->prompt);
        goto done;
    }
    if (!rt_npy_read(d, s->tokens, &tok)) goto done;
    if (tok.rank != 2 || !tok.was_int || tok.shape[0] < 1 || tok.shape[1] < 1) {
        diag_error(d, ((SrcLoc){s->tokens, 0, 0}), "token ids must be a non-empty int32 or int64 array [B, T]");
        goto done;
    }
    rc = setup_and_decode(a, d, s, ck, &tok);
done:
    free(tok.data);
    rt_checkpoint_close(ck);
    arena_free(a);
    return rc;
}
