/* strmap.c — a string-keyed hash table whose entries live in an arena.
 *
 * Chained, made on the first insertion and doubled when it holds as many
 * entries as buckets, so lookups stay constant-time from a handful of
 * names to the 10^5 `let`s of a generated model. Each entry keeps its
 * key's length and full hash: lookups compare those before the bytes and
 * growing rehashes nothing. A value is stored inline after its entry, so
 * it keeps its address for the life of the arena. */
#include "support/support.h"

#include <string.h>

struct StrMapEntry {
    const char *key;
    size_t len, hash;
    StrMapEntry *next; /* in the same bucket */
    max_align_t value[]; /* vsize bytes */
};

void strmap_init(StrMap *m, Arena *a, size_t vsize) { *m = (StrMap){.a = a, .vsize = vsize}; }

static size_t hash_bytes(const char *s, size_t n) {
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static StrMapEntry *find(const StrMap *m, const char *key, size_t n, size_t h) {
    if (!m->tab) return NULL;
    for (StrMapEntry *e = m->tab[h & m->mask]; e; e = e->next)
        if (e->hash == h && e->len == n && memcmp(e->key, key, n) == 0) return e;
    return NULL;
}

void *strmap_getn(const StrMap *m, const char *key, size_t n) {
    StrMapEntry *e = find(m, key, n, hash_bytes(key, n));
    return e ? e->value : NULL;
}

void *strmap_get(const StrMap *m, const char *key) { return strmap_getn(m, key, strlen(key)); }

/* Doubles the bucket array (8 at first) and relinks the entries. */
static void grow(StrMap *m) {
    size_t nb = m->tab ? (m->mask + 1) * 2 : 8;
    StrMapEntry **tab = arena_alloc(m->a, sizeof(StrMapEntry *) * nb);
    for (size_t i = 0; m->tab && i <= m->mask; i++)
        for (StrMapEntry *e = m->tab[i], *next; e; e = next) {
            next = e->next;
            e->next = tab[e->hash & (nb - 1)];
            tab[e->hash & (nb - 1)] = e;
        }
    m->tab = tab;
    m->mask = nb - 1;
}

void *strmap_put(StrMap *m, const char *key, bool *fresh) {
    size_t n = strlen(key), h = hash_bytes(key, n);
    StrMapEntry *e = find(m, key, n, h);
    if (fresh) *fresh = !e;
    if (e) return e->value;
    if (!m->tab || m->count > m->mask) grow(m);
    e = arena_alloc(m->a, sizeof *e + m->vsize);
    *e = (StrMapEntry){key, n, h, m->tab[h & m->mask]};
    m->tab[h & m->mask] = e;
    m->count++;
    return e->value;
}
