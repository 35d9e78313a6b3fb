/* arena.c — bump allocation in 64 KiB chunks, freed all at once.
 *
 * With DSCC_ARENA_MALLOC defined every allocation is its own malloc, linked
 * into a list, so AddressSanitizer catches overruns between objects. */
#include "support/support.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK (64 * 1024)

typedef struct Chunk {
    struct Chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} Chunk;

struct Arena {
    Chunk *head;
};

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) dscc_internal_error(__FILE__, __LINE__, "out of host memory");
    return p;
}

Arena *arena_new(void) {
    Arena *a = calloc(1, sizeof *a);
    return a;
}

void arena_free(Arena *a) {
    if (!a) return;
    for (Chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(a);
}

void *arena_alloc(Arena *a, size_t n) {
    size_t need = (n + 15) & ~(size_t)15;
#ifdef DSCC_ARENA_MALLOC
    Chunk *c = xmalloc(sizeof(Chunk) + need);
    c->used = c->size = need;
    c->next = a->head;
    a->head = c;
    memset(c->data, 0, need);
    return c->data;
#else
    Chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        size_t size = need > ARENA_CHUNK ? need : ARENA_CHUNK;
        Chunk *nc = xmalloc(sizeof(Chunk) + size);
        nc->used = 0;
        nc->size = size;
        /* A big one-off block goes behind the head so the head keeps its room. */
        if (c && need > ARENA_CHUNK) {
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += need;
    memset(p, 0, need);
    return p;
#endif
}

void *arena_realloc(Arena *a, void *p, size_t old, size_t n) {
    if (n <= old && p) return p;
    void *q = arena_alloc(a, n);
    if (p && old) memcpy(q, p, old);
    return q;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void dscc_internal_error(const char *file, int line, const char *msg) {
    fprintf(stderr, "%s:%d: internal compiler error: %s\n", file, line, msg);
    fprintf(stderr, "please report this as a dscc bug, with the input that caused it\n");
    abort();
}
