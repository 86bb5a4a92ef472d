/* arena.c — bump allocator for IR objects (strings, node arrays, attributes).
 * Everything allocated here dies with the graph; nothing is freed one by one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

struct ir_arena {
    struct chunk *head;
};

struct ir_arena *ir_arena_new(void)
{
    struct ir_arena *a = calloc(1, sizeof *a);
    if (!a) {
        fprintf(stderr, "pdc: out of memory creating an arena\n");
        abort();
    }
    return a;
}

void ir_arena_free(struct ir_arena *a)
{
    if (!a)
        return;
    for (struct chunk *c = a->head, *nx; c; c = nx) {
        nx = c->next;
        free(c);
    }
    free(a);
}

void *ir_arena_alloc(struct ir_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > (1u << 16) ? n : (1u << 16);
        c = malloc(sizeof *c + cap);
        if (!c) {
            /* IR metadata is small; running out here means the machine is out */
            fprintf(stderr, "pdc: out of memory (arena, %zu bytes)\n", n);
            abort();
        }
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->mem + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *ir_arena_strndup(struct ir_arena *a, const char *s, size_t n)
{
    char *p = ir_arena_alloc(a, n + 1);
    if (n) /* an empty protobuf string may come with a NULL pointer */
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *ir_arena_strdup(struct ir_arena *a, const char *s)
{
    return ir_arena_strndup(a, s, strlen(s));
}
