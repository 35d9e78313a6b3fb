/* test_config.c — parameter binding: --set over config.json over the
 * default, `absent` when a config lacks the key (or holds null), dotted keys
 * into nested objects, `from` keys tried in order, and every error a config
 * or --set value can cause, each naming the file and key or the argument.
 * Bound values are read back from the IR (weight shapes and names, const
 * values), so the test sees what the lowering really used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/frontend.h"

typedef struct {
    Arena *a;
    DiagEngine *d;
    char dir[64];  /* a fresh temporary folder: the test writes nowhere else */
    char path[96]; /* the config file of this test, in dir */
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    f->d = diag_new(f->a, NULL);
    snprintf(f->dir, sizeof f->dir, "/tmp/dscc_cfg_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/config.json", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fx *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    arena_free(f->a);
    free(f);
    return 0;
}

static void write_config(Fx *f, const char *json) {
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(json, fp);
    fclose(fp);
}

/* The model every test binds: each parameter shows up in the graph. */
static const char *MODEL =
    "param hidden: int = 64;\n"
    "param layers: int = 2 from \"num_hidden_layers\", \"n_layer\";\n"
    "param eps: float = 1e-6 from \"rms_norm_eps\";\n"
    "param factor: float = 40 from \"rope_scaling.factor\" absent 1;\n"
    "param kind: str = \"yarn\" from \"rope_scaling.type\" absent \"default\";\n"
    "param tied: bool = false from \"tie_word_embeddings\";\n"
    "param twice: int = hidden * 2;\n"
    "dim B;\n"
    "input x: f32[B, hidden];\n"
    "weight w: f32[layers, twice] = \"{kind}.w\";\n"
    "weight n: f32[hidden] = \"n\";\n"
    "let y = rmsnorm(x, n, eps=eps) * factor;\n"
    "if tied { y = neg(y); }\n"
    "output o = y;\n";

typedef struct {
    int64_t hidden, layers, twice;
    double eps, factor;
    const char *kind;
    bool tied;
} Bound;

/* Compiles MODEL with the given config and sets; reads the bound values back. */
static bool bind(Fx *f, bool use_config, const FeSetting *sets, int nsets, Bound *b) {
    FeOptions o = {.config_path = use_config ? f->path : NULL, .sets = sets, .nsets = nsets};
    IrGraph *g = fe_compile_string(f->a, f->d, "cfg.dsl", MODEL, strlen(MODEL), &o);
    if (!g) return false;
    memset(b, 0, sizeof *b);
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = g->nodes[i];
        if (n->op == IR_OP_INPUT) b->hidden = n->type.dims[1].coeff;
        if (n->op == IR_OP_WEIGHT && n->type.rank == 2) {
            b->layers = n->type.dims[0].coeff;
            b->twice = n->type.dims[1].coeff;
            const char *name = ir_node_attr_str(n, "name", "");
            b->kind = arena_strndup(f->a, name, strlen(name) - 2); /* minus ".w" */
        }
        if (n->op == IR_OP_RMSNORM) b->eps = ir_node_attr_float(n, "eps", -1);
        if (n->op == IR_OP_CONST) b->factor = ir_node_attr_float(n, "value", -1);
        if (n->op == IR_OP_NEG) b->tied = true;
    }
    return true;
}

static void expect_error(Fx *f, const char *file, int line, const char *text) {
    const Diag *d = diag_first(f->d);
    while (d && d->level != DIAG_ERROR) d = d->next;
    assert_non_null(d);
    if (!strstr(d->msg, text)) fail_msg("'%s' does not contain '%s'", d->msg, text);
    if (file) assert_string_equal(d->loc.file, file);
    else assert_null(d->loc.file);
    assert_int_equal(d->loc.line, line);
    assert_int_equal(diag_error_count(f->d), 1);
}

static void test_defaults_without_config(void **state) {
    Fx *f = *state;
    Bound b;
    assert_true(bind(f, false, NULL, 0, &b));
    assert_int_equal(b.hidden, 64);
    assert_int_equal(b.layers, 2);
    assert_int_equal(b.twice, 128);
    assert_float_equal(b.eps, 1e-6, 1e-20);
    assert_float_equal(b.factor, 40.0, 0); /* no config: the default, not `absent` */
    assert_string_equal(b.kind, "yarn");
    assert_false(b.tied);
}

static void test_config_then_set(void **state) {
    Fx *f = *state;
    write_config(f, "{\"hidden\": 32, \"n_layer\": 7, \"num_hidden_layers\": 5, \"rms_norm_eps\": 1e-5,\n"
                    " \"rope_scaling\": {\"factor\": 4, \"type\": \"dynamic\"}, \"tie_word_embeddings\": true}");
    Bound b;
    assert_true(bind(f, true, NULL, 0, &b));
    assert_int_equal(b.hidden, 32);
    assert_int_equal(b.twice, 64);   /* defaults see bound parameters */
    assert_int_equal(b.layers, 5);   /* the first `from` key present wins */
    assert_float_equal(b.eps, 1e-5, 1e-20);
    assert_float_equal(b.factor, 4.0, 0); /* nested key; a JSON int for a float */
    assert_string_equal(b.kind, "dynamic");
    assert_true(b.tied);

    const FeSetting sets[] = {{"hidden", "16"}, {"layers", "3"}, {"kind", "plain"}, {"hidden", "010"},
                              {"tied", "false"}, {"eps", "0.25"}};
    assert_true(bind(f, true, sets, 6, &b));
    assert_int_equal(b.hidden, 10); /* the last --set wins; decimal, not octal */
    assert_int_equal(b.twice, 20);
    assert_int_equal(b.layers, 3);
    assert_string_equal(b.kind, "plain");
    assert_false(b.tied);
    assert_float_equal(b.eps, 0.25, 0);
    assert_float_equal(b.factor, 4.0, 0);
}

/* A config without the keys (or with nulls) selects the `absent` value. */
static void test_absent(void **state) {
    Fx *f = *state;
    write_config(f, "{\"rope_scaling\": null, \"num_hidden_layers\": null, \"n_layer\": 9}");
    Bound b;
    assert_true(bind(f, true, NULL, 0, &b));
    assert_float_equal(b.factor, 1.0, 0);
    assert_string_equal(b.kind, "default");
    assert_int_equal(b.layers, 9); /* null counts as absent: the next key is tried */
    assert_float_equal(b.eps, 1e-6, 1e-20); /* no `absent` expression: the default */
    write_config(f, "{\"rope_scaling\": {\"factor\": 8}}");
    assert_true(bind(f, true, NULL, 0, &b));
    assert_float_equal(b.factor, 8.0, 0);
    assert_string_equal(b.kind, "default");
}

static void test_bad_config_values(void **state) {
    Fx *f = *state;
    struct {
        const char *json, *msg;
    } cases[] = {
        {"{\"hidden\": \"64\"}", "key 'hidden': expected an integer, got a string"},
        {"{\"hidden\": 64.5}", "key 'hidden': expected an integer, got a non-integral or too large number"},
        {"{\"hidden\": 1e300}", "key 'hidden': expected an integer, got a non-integral or too large number"},
        {"{\"n_layer\": [1]}", "key 'n_layer': expected an integer, got an array"},
        {"{\"rms_norm_eps\": true}", "key 'rms_norm_eps': expected a number, got a bool"},
        {"{\"rope_scaling\": {\"type\": 3}}", "key 'rope_scaling.type': expected a string, got a number"},
        {"{\"tie_word_embeddings\": \"yes\"}", "key 'tie_word_embeddings': expected true or false, got a string"},
        {"{\"rope_scaling\": {\"factor\": {}}}", "key 'rope_scaling.factor': expected a number, got an object"},
        /* a path through something that is not an object: once, for both params reading it */
        {"{\"rope_scaling\": \"yarn\"}", "key 'rope_scaling': expected an object, got a string"},
        {"{\"rope_scaling\": [4.0]}", "key 'rope_scaling': expected an object, got an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        DiagEngine *d = diag_new(f->a, NULL);
        f->d = d;
        write_config(f, cases[i].json);
        Bound b;
        assert_false(bind(f, true, NULL, 0, &b));
        expect_error(f, f->path, 0, cases[i].msg);
    }
}

static void test_malformed_config(void **state) {
    Fx *f = *state;
    Bound b;
    write_config(f, "{\n  \"hidden\": 64,\n  \"layers\": tru\n}\n");
    assert_false(bind(f, true, NULL, 0, &b));
    expect_error(f, f->path, 3, "malformed JSON");
    f->d = diag_new(f->a, NULL);
    write_config(f, "[1, 2]");
    assert_false(bind(f, true, NULL, 0, &b));
    expect_error(f, f->path, 0, "the config must be a JSON object");
    f->d = diag_new(f->a, NULL);
    write_config(f, "");
    assert_false(bind(f, true, NULL, 0, &b));
    expect_error(f, f->path, 1, "malformed JSON");
    f->d = diag_new(f->a, NULL);
    unlink(f->path);
    assert_false(bind(f, true, NULL, 0, &b));
    expect_error(f, f->path, 0, "cannot read: No such file or directory");
}

/* `model NAME for "TYPE", ...` admits only configs of those model_types. */
static void test_model_type(void **state) {
    Fx *f = *state;
    const char *src = "model m for \"deepseek_v3\", \"kimi_k2\";\n"
                      "param hidden: int = 8;\ndim B;\ninput x: f32[B, hidden];\noutput o = neg(x);\n";
    struct {
        const char *json, *msg; /* NULL: accepted */
    } cases[] = {
        {"{\"model_type\": \"deepseek_v3\", \"hidden\": 4}", NULL},
        {"{\"model_type\": \"kimi_k2\"}", NULL},
        {"{\"hidden\": 4}", NULL}, /* a config that does not say */
        {"{\"model_type\": null}", NULL},
        {"{\"model_type\": \"llama\", \"hidden\": 4096}",
         "key 'model_type': this is a config of \"llama\", but model m describes \"deepseek_v3\", \"kimi_k2\""},
        {"{\"model_type\": 3}", "key 'model_type': expected a string, got a number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->d = diag_new(f->a, NULL);
        write_config(f, cases[i].json);
        FeOptions o = {.config_path = f->path};
        IrGraph *g = fe_compile_string(f->a, f->d, "m.dsl", src, strlen(src), &o);
        if (!cases[i].msg) {
            assert_non_null(g);
            continue;
        }
        assert_null(g);
        expect_error(f, f->path, 0, cases[i].msg);
        if (i == 4) { /* and a note at the declaration */
            const Diag *note = diag_first(f->d)->next;
            assert_non_null(note);
            assert_int_equal(note->level, DIAG_NOTE);
            assert_int_equal(note->loc.line, 1);
        }
    }
    /* a model that declares no type takes any config */
    f->d = diag_new(f->a, NULL);
    write_config(f, "{\"model_type\": \"llama\"}");
    FeOptions o = {.config_path = f->path};
    const char *plain = src + strlen("model m for \"deepseek_v3\", \"kimi_k2\";\n");
    assert_non_null(fe_compile_string(f->a, f->d, "p.dsl", plain, strlen(plain), &o));
}

static void test_bad_sets(void **state) {
    Fx *f = *state;
    struct {
        FeSetting set;
        const char *msg;
    } cases[] = {
        {{"hiden", "3"}, "--set: no parameter named 'hiden'; did you mean 'hidden'?"},
        {{"completely_else", "3"}, "--set: no parameter named 'completely_else'"},
        {{"y", "3"}, "--set: no parameter named 'y'"}, /* `let y` is no parameter to suggest */
        {{"hidden", "12abc"}, "--set hidden=12abc: expected an integer"},
        {{"hidden", ""}, "--set hidden=: expected an integer"},
        {{"hidden", "99999999999999999999"}, "--set hidden=99999999999999999999: expected an integer"},
        {{"eps", "1e-5x"}, "--set eps=1e-5x: expected a number"},
        {{"tied", "yes"}, "--set tied=yes: expected true or false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->d = diag_new(f->a, NULL);
        Bound b;
        assert_false(bind(f, false, &cases[i].set, 1, &b));
        expect_error(f, NULL, 0, cases[i].msg);
        if (i == 1 || i == 2) assert_null(strstr(diag_first(f->d)->msg, "did you mean"));
    }
}

/* fe_declares_param: a parameter of the file or of a file it imports
 * (dscc run asks it for logits_last_only, then compiles once); a `let`
 * or a dim is none; a file that does not parse or does not exist gives
 * false, reporting nothing. */
static void test_declares_param(void **state) {
    Fx *f = *state;
    char main_path[128], lib_path[128], bad_path[128];
    snprintf(main_path, sizeof main_path, "%s/main.dsl", f->dir);
    snprintf(lib_path, sizeof lib_path, "%s/lib.dsl", f->dir);
    snprintf(bad_path, sizeof bad_path, "%s/bad.dsl", f->dir);
    const char *files[][2] = {{lib_path, "param inner: bool = false;\n"},
                              {main_path, "import \"lib.dsl\";\nparam hidden: int = 4;\ndim B;\nlet y = hidden;\n"},
                              {bad_path, "param hidden int = 4;\n"}};
    for (int i = 0; i < 3; i++) {
        FILE *fp = fopen(files[i][0], "w");
        assert_non_null(fp);
        fputs(files[i][1], fp);
        fclose(fp);
    }
    bool yes = true;
    assert_true(fe_declares_param(f->a, main_path, "hidden", &yes) && yes);
    assert_true(fe_declares_param(f->a, main_path, "inner", &yes) && yes);
    assert_true(fe_declares_param(f->a, main_path, "y", &yes) && !yes);
    assert_true(fe_declares_param(f->a, main_path, "B", &yes) && !yes);
    assert_true(fe_declares_param(f->a, main_path, "logits_last_only", &yes) && !yes);
    yes = true;
    assert_false(fe_declares_param(f->a, bad_path, "hidden", &yes));
    assert_false(yes);
    assert_false(fe_declares_param(f->a, f->path, "hidden", &yes)); /* no such file (config.json is not written) */
    for (int i = 0; i < 3; i++) unlink(files[i][0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_without_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_then_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_sets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declares_param, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
