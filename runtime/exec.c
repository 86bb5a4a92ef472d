/* exec.c — programs: graph inputs, outputs and kept tensors get buffers of their own,
 * every other intermediate an offset in one activation block (memplan.c); nodes run in
 * topological order on one target. A target with generated kernels gets the program
 * partitioned into kernel groups (codegen/fuse.h): each fused group is compiled once
 * here and launched as one unit, in the plan's order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_impl.h"
#include "memplan.h"
#include "philox.h"

size_t rt_tensor_bytes(const struct ir_tensor *t)
{
    int64_t n = ir_numel(t);
    return n < 0 ? 0 : (size_t)n * ir_dtype_size(t->dtype);
}

void rt_prog_free(struct rt_prog *p)
{
    if (!p)
        return;
    const struct cg_mem *m = p->tgt->mem;
    if (p->prof) {
        rt_prof_report(p);
        free(p->prof);
    }
    for (uint32_t t = 0; p->buf && p->owned && t < p->g->nt; t++)
        if (p->owned[t])
            free(p->buf[t]);
    for (uint32_t i = 0; p->kern && i < p->plan.n_groups; i++)
        if (p->kern[i])
            p->tgt->release(p->kern[i]);
    free(p->kern);
    for (uint32_t i = 0; p->prep && i < p->g->nn; i++)
        free(p->prep[i]);
    free(p->prep);
    free(p->view);
    cg_plan_free(&p->plan);
    free(p->buf);
    free(p->owned);
    if (p->block)
        m ? m->release(p->block) : free(p->block);
    if (p->state)
        m->release(p->state);
    free(p);
}

static int own(struct rt_prog *p, uint32_t t, struct diag *d)
{
    if (p->buf[t] || p->plan.internal[t]) /* internal: lives in a kernel's registers */
        return ST_OK;
    size_t nb = rt_tensor_bytes(&p->g->t[t]);
    p->buf[t] = calloc(1, nb ? nb : 1);
    if (!p->buf[t])
        return diag_set(d, ST_ERR_NOMEM, "out of memory for '%s' (%zu bytes)", p->g->t[t].name, nb);
    p->owned[t] = 1;
    return ST_OK;
}

/* A target with memory of its own (a GPU) gets one more block besides the
 * activations: every constant (copied over), graph input and output, kept tensor
 * and unplanned result, at 256-byte aligned offsets, zeroed. A few big allocations
 * instead of one per tensor. */
static int own_device_block(struct rt_prog *p, struct diag *d)
{
    const struct ir_graph *g = p->g;
    const struct cg_mem *m = p->tgt->mem;
    size_t *off = malloc(((size_t)g->nt + 1) * sizeof *off), total = 0;
    unsigned char *need = calloc((size_t)g->nt + 1, 1);
    if (!off || !need) {
        free(off);
        free(need);
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    for (uint32_t k = 0; k < g->n_inputs; k++)
        need[g->inputs[k]] = 1;
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        for (uint32_t o = 0; o < n->n_out; o++)
            if (n->out[o] != IR_NONE)
                need[n->out[o]] = 1;
    }
    for (uint32_t t = 0; t < g->nt; t++) {
        int mine = g->t[t].data || (need[t] && !p->buf[t] && !p->plan.internal[t]);
        off[t] = mine ? total : SIZE_MAX;
        total += mine ? (rt_tensor_bytes(&g->t[t]) + 255) / 256 * 256 : 0;
    }
    free(need);
    p->state = m->alloc(total ? total : 256);
    int st = !p->state || m->fill(p->state, 0, total)
                 ? diag_set(d, ST_ERR_NOMEM, "out of %s memory for the program's tensors "
                            "(%zu bytes)", p->tgt->name, total)
                 : ST_OK;
    for (uint32_t t = 0; !st && t < g->nt; t++) {
        if (off[t] == SIZE_MAX)
            continue;
        p->buf[t] = p->state + off[t];
        if (g->t[t].data && m->put(p->buf[t], g->t[t].data, rt_tensor_bytes(&g->t[t])))
            st = diag_set(d, ST_ERR_DEVICE, "copying constant '%s' to %s failed", g->t[t].name,
                          p->tgt->name);
    }
    free(off);
    return st;
}

/* the intermediates' offsets in one block. Its bytes start as NaN (0xff…): a kernel
 * that reads an output it did not write shows up at once instead of depending on
 * whatever the block held before. */
static int place(struct rt_prog *p, struct diag *d)
{
    const struct ir_graph *g = p->g;
    const char *env = getenv("PDC_MEMPLAN");
    size_t *off = malloc(((size_t)g->nt + 1) * sizeof *off);
    struct rt_sched sc = {p->plan.order, p->plan.group_end, p->plan.internal};
    if (!off || rt_memplan_sched(g, &sc, !(env && strcmp(env, "0") == 0), off, &p->mem)) {
        free(off);
        return diag_set(d, ST_ERR_NOMEM, "out of memory planning the program's buffers");
    }
    const struct cg_mem *m = p->tgt->mem;
    size_t nb = p->mem.planned ? p->mem.planned : 64; /* a multiple of 64 */
    p->block = m ? m->alloc(nb) : aligned_alloc(64, nb);
    if (!p->block || (m ? m->fill(p->block, 0xff, nb) : (memset(p->block, 0xff, nb), 0))) {
        free(off);
        return diag_set(d, ST_ERR_NOMEM, "out of %s memory for the activation block (%zu bytes)",
                        p->tgt->name, p->mem.planned);
    }
    for (uint32_t t = 0; t < g->nt; t++)
        if (off[t] != RT_NOT_PLANNED)
            p->buf[t] = p->block + off[t];
    for (uint32_t k = 0; k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        uint32_t src = rt_memplan_view(g, n);
        p->view[g->topo[k]] =
            src != IR_NONE && off[src] != RT_NOT_PLANNED && off[src] == off[n->out[0]];
    }
    free(off);
    return ST_OK;
}

void rt_prog_memory(const struct rt_prog *p, size_t *planned, size_t *naive)
{
    *planned = p->mem.planned;
    *naive = p->mem.naive;
}

/* PDC_DEBUG=select (pdc -d select): which target runs each group */
static void print_select(const struct rt_prog *p, uint32_t gi)
{
    const struct cg_group *gr = &p->plan.groups[gi];
    const struct ir_graph *g = p->g;
    fprintf(stderr, "select: group %u: %s %s:", gi, p->tgt->name,
            gr->fused ? "fused kernel" : "node");
    for (uint32_t i = 0; i < gr->n_nodes; i++)
        fprintf(stderr, " %s", ir_ops[g->n[gr->nodes[i]].op].name);
    fprintf(stderr, "\n");
}

/* a target that cannot compile kernels here (no JIT for this machine): the group's
 * nodes run one by one, so their results get buffers after all */
static int unfuse(struct rt_prog *p, uint32_t gi, struct diag *d)
{
    static int warned;
    struct cg_group *gr = &p->plan.groups[gi];
    if (!warned++)
        fprintf(stderr, "pdc: %s; running the nodes one by one\n", d->msg);
    *d = (struct diag){0};
    gr->fused = 0;
    for (uint32_t k = 0; k < gr->n_nodes; k++)
        p->plan.internal[p->g->n[gr->nodes[k]].out[0]] = 0;
    return ST_OK;
}

/* Every node that runs alone, prepared by a target that prepares (target.h). A
 * device target has no fallback to the host inside a step: every such node must be
 * one it has a kernel for, said before anything runs, naming them all. */
static int prepare_nodes(struct rt_prog *p, struct diag *d)
{
    const struct ir_node *first = NULL;
    char ops[256] = "";
    size_t len = 0;
    uint32_t count = 0;
    if (!p->tgt->prepare && !p->tgt->mem)
        return ST_OK;
    if (p->tgt->prepare && !(p->prep = calloc((size_t)p->g->nn + 1, sizeof *p->prep)))
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (uint32_t gi = 0; gi < p->plan.n_groups; gi++) {
        const struct cg_group *gr = &p->plan.groups[gi];
        for (uint32_t i = 0; !p->kern[gi] && i < gr->n_nodes; i++) {
            const struct ir_node *n = &p->g->n[gr->nodes[i]];
            int st = p->tgt->prepare ? p->tgt->prepare(p->g, n, &p->prep[gr->nodes[i]])
                     : p->tgt->supports(p->g, n) ? ST_OK : ST_ERR_UNSUPPORTED;
            if (st && st != ST_ERR_UNSUPPORTED)
                return diag_set(d, st, "preparing node '%s' (%s) on target %s failed", n->name,
                                ir_ops[n->op].name, p->tgt->name);
            if (!st)
                continue;
            const char *op = ir_ops[n->op].name;
            first = first ? first : n;
            count++;
            char key[64];
            snprintf(key, sizeof key, " %s,", op);
            if (!strstr(ops, key) && len + strlen(key) < sizeof ops)
                len += (size_t)snprintf(ops + len, sizeof ops - len, "%s", key);
        }
    }
    if (!first)
        return ST_OK;
    ops[len ? len - 1 : 0] = 0;
    return diag_set(d, ST_ERR_UNSUPPORTED, "node '%s' (%s) and %u more have no kernel on target "
                    "%s (ops:%s); run this program on the CPU: --device cpu", first->name,
                    ir_ops[first->op].name, count - 1, p->tgt->name, ops);
}

/* a target that compiles a program's kernels together (one GPU module) */
static int compile_many(struct rt_prog *p, struct diag *d)
{
    const char *dbg = getenv("PDC_DEBUG");
    const struct cg_group **grp = malloc(((size_t)p->plan.n_groups + 1) * sizeof *grp);
    struct cg_kernel **k = malloc(((size_t)p->plan.n_groups + 1) * sizeof *k);
    uint32_t n = 0;
    int st = grp && k ? ST_OK : diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; !st && i < p->plan.n_groups; i++)
        if (p->plan.groups[i].fused)
            grp[n++] = &p->plan.groups[i];
    if (!st && n)
        st = p->tgt->compile_many(p->g, grp, n, k, d);
    for (uint32_t i = 0, j = 0; !st && i < p->plan.n_groups; i++) {
        if (p->plan.groups[i].fused)
            p->kern[i] = k[j++];
        if (dbg && strstr(dbg, "select"))
            print_select(p, i);
    }
    free(grp);
    free(k);
    return st ? st : prepare_nodes(p, d);
}

/* the kernel groups: fused ones compiled by the target, the rest node by node */
static int plan_groups(struct rt_prog *p, struct diag *d)
{
    const char *dbg = getenv("PDC_DEBUG");
    uint32_t min_fuse = p->tgt->min_fuse ? p->tgt->min_fuse : 2;
    int st = p->tgt->compile ? cg_fuse(p->g, min_fuse, &p->plan) : cg_plan_trivial(p->g, &p->plan);
    if (st)
        return diag_set(d, st, "out of memory partitioning the program into kernel groups");
    p->kern = calloc((size_t)p->plan.n_groups + 1, sizeof *p->kern);
    if (!p->kern)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (p->tgt->compile_many)
        return compile_many(p, d);
    for (uint32_t i = 0; !st && i < p->plan.n_groups; i++) {
        if (p->plan.groups[i].fused)
            st = p->tgt->compile(p->g, &p->plan.groups[i], &p->kern[i], d);
        if (st == ST_ERR_UNSUPPORTED && !p->tgt->mem)
            st = unfuse(p, i, d); /* a device target has no host to fall back on */
        if (dbg && strstr(dbg, "select"))
            print_select(p, i);
    }
    return st ? st : prepare_nodes(p, d);
}

int rt_prog_new(const struct ir_graph *g, const struct cg_target *tgt, struct rt_prog **out,
                struct diag *d)
{
    *out = NULL;
    if (!(g->valid & IR_VALID_TOPO))
        return diag_set(d, ST_ERR_INVALID, "program has no execution order (run the pipeline)");
    struct rt_prog *p = calloc(1, sizeof *p);
    if (!p)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    p->g = g;
    p->tgt = tgt;
    const char *chk = getenv("PDC_CHECK");
    p->check = chk && strcmp(chk, "ref") == 0 && tgt != &cg_ref;
    if (p->check && tgt->mem && !tgt->mem->host_addressable) {
        free(p);
        return diag_set(d, ST_ERR_UNSUPPORTED, "PDC_CHECK=ref needs a target whose memory the "
                        "host can read; %s's cannot", tgt->name);
    }
    p->buf = calloc((size_t)g->nt + 1, sizeof *p->buf);
    p->owned = calloc((size_t)g->nt + 1, 1);
    p->view = calloc((size_t)g->nn + 1, 1);
    int st = !p->buf || !p->owned || !p->view ? diag_set(d, ST_ERR_NOMEM, "out of memory")
                                              : ST_OK;
    for (uint32_t t = 0; !st && !tgt->mem && t < g->nt; t++)
        p->buf[t] = g->t[t].data;
    if (!st)
        st = plan_groups(p, d);
    if (!st && rt_prof_enabled() &&
        !(p->prof = calloc((size_t)p->plan.n_groups + 1, sizeof *p->prof)))
        st = diag_set(d, ST_ERR_NOMEM, "out of memory");
    if (!st)
        st = place(p, d);
    if (!st && tgt->mem)
        st = own_device_block(p, d);
    for (uint32_t k = 0; !st && !tgt->mem && k < g->n_inputs; k++)
        st = own(p, g->inputs[k], d);
    for (uint32_t k = 0; !st && !tgt->mem && k < g->ntopo; k++) {
        const struct ir_node *n = &g->n[g->topo[k]];
        for (uint32_t o = 0; !st && o < n->n_out; o++)
            if (n->out[o] != IR_NONE)
                st = own(p, n->out[o], d);
    }
    if (st) {
        rt_prog_free(p);
        return st;
    }
    *out = p;
    return ST_OK;
}

void *rt_prog_buf(struct rt_prog *p, uint32_t t) { return p->tgt->mem ? NULL : p->buf[t]; }

int rt_prog_write(struct rt_prog *p, uint32_t t, const void *src, size_t n, struct diag *d)
{
    const struct cg_mem *m = p->tgt->mem;
    if (!m) {
        memcpy(p->buf[t], src, n);
        return ST_OK;
    }
    return m->put(p->buf[t], src, n)
               ? diag_set(d, ST_ERR_DEVICE, "copying '%s' to %s failed", p->g->t[t].name,
                          p->tgt->name)
               : ST_OK;
}

int rt_prog_read(struct rt_prog *p, uint32_t t, void *dst, size_t n, struct diag *d)
{
    const struct cg_mem *m = p->tgt->mem;
    if (!m) {
        memcpy(dst, p->buf[t], n);
        return ST_OK;
    }
    return m->get(dst, p->buf[t], n)
               ? diag_set(d, ST_ERR_DEVICE, "copying '%s' from %s failed", p->g->t[t].name,
                          p->tgt->name)
               : ST_OK;
}

int rt_prog_read_start(struct rt_prog *p, uint32_t t, size_t n, struct diag *d)
{
    const struct cg_mem *m = p->tgt->mem;
    if (n > sizeof p->early)
        return diag_set(d, ST_ERR_INVALID, "an early read of '%s' is limited to %zu bytes",
                        p->g->t[t].name, sizeof p->early);
    if (!m) {
        memcpy(p->early, p->buf[t], n);
        return ST_OK;
    }
    return m->read_start(p->buf[t], n)
               ? diag_set(d, ST_ERR_DEVICE, "copying '%s' from %s failed", p->g->t[t].name,
                          p->tgt->name)
               : ST_OK;
}

int rt_prog_read_finish(struct rt_prog *p, void *dst, size_t n, struct diag *d)
{
    const struct cg_mem *m = p->tgt->mem;
    if (!m) {
        memcpy(dst, p->early, n);
        return ST_OK;
    }
    return m->read_finish(dst, n)
               ? diag_set(d, ST_ERR_DEVICE, "a read from %s failed", p->tgt->name)
               : ST_OK;
}

int rt_prog_copy(struct rt_prog *p, uint32_t dst, uint32_t src, size_t n, struct diag *d)
{
    const struct cg_mem *m = p->tgt->mem;
    if (!m) {
        memcpy(p->buf[dst], p->buf[src], n);
        return ST_OK;
    }
    return m->copy(p->buf[dst], p->buf[src], n)
               ? diag_set(d, ST_ERR_DEVICE, "copying '%s' to '%s' on %s failed",
                          p->g->t[src].name, p->g->t[dst].name, p->tgt->name)
               : ST_OK;
}

int rt_prog_uniform(struct rt_prog *p, uint32_t t, uint64_t seed, uint64_t step, uint32_t stream,
                    struct diag *d)
{
    const struct cg_mem *m = p->tgt->mem;
    int64_t n = ir_numel(&p->g->t[t]);
    if (!m) {
        philox_uniform_fill_par(p->buf[t], n, seed, step, stream, 0);
        return ST_OK;
    }
    return m->uniform(p->buf[t], n, seed, step, stream, 0)
               ? diag_set(d, ST_ERR_DEVICE, "drawing '%s' on %s failed", p->g->t[t].name,
                          p->tgt->name)
               : ST_OK;
}

/* the data-dependent failure a kernel can meet is an index out of range: say which
 * table, since a too-long --seq or a bad token id shows up exactly here */
static int node_failed(const struct rt_prog *p, const struct ir_node *n, int st, struct diag *d)
{
    const struct ir_graph *g = p->g;
    int gather = n->op == IR_OP_Gather || n->op == IR_OP_GatherElements;
    if (gather && st == ST_ERR_INVALID && n->n_in == 2) {
        const struct ir_tensor *data = &g->t[n->in[0]], *idx = &g->t[n->in[1]];
        int64_t axis = ir_attr_int(n, "axis", 0);
        if (axis < 0)
            axis += data->rank;
        int64_t len = axis >= 0 && axis < data->rank ? data->dims[axis] : 0;
        return diag_set(d, st, "node '%s' (%s) on target %s: an index in '%s' is outside "
                        "[-%lld, %lld), the length of '%s' along axis %lld (a sequence longer "
                        "than the model's positions, or an id beyond its vocabulary?)", n->name,
                        ir_ops[n->op].name, p->tgt->name, idx->name, (long long)len,
                        (long long)len, data->name, (long long)axis);
    }
    return diag_set(d, st, "node '%s' (%s) failed on target %s (%s)", n->name,
                    ir_ops[n->op].name, p->tgt->name, status_name((enum status)st));
}

int rt_run_node(struct rt_prog *p, const struct ir_node *n, struct diag *d)
{
    void *in[256], *out[256];
    if (n->n_in > 256 || n->n_out > 256)
        return diag_set(d, ST_ERR_UNSUPPORTED, "node '%s' has too many operands", n->name);
    for (uint32_t i = 0; i < n->n_in; i++)
        in[i] = n->in[i] == IR_NONE ? NULL : p->buf[n->in[i]];
    for (uint32_t o = 0; o < n->n_out; o++)
        out[o] = n->out[o] == IR_NONE ? NULL : p->buf[n->out[o]];
    const void *prep = p->prep ? p->prep[n - p->g->n] : NULL;
    int st = prep ? p->tgt->run_prepared(prep, in, out) : p->tgt->run(p->g, n, in, out);
    return st ? node_failed(p, n, st, d) : ST_OK;
}

int rt_run_kernel(struct rt_prog *p, uint32_t gi, struct diag *d)
{
    const struct cg_group *gr = &p->plan.groups[gi];
    void *bufs[CG_GROUP_MAX_BUFS];
    for (uint32_t i = 0; i < gr->n_in; i++)
        bufs[i] = p->buf[gr->in[i]];
    for (uint32_t o = 0; o < gr->n_out; o++)
        bufs[gr->n_in + o] = p->buf[gr->out[o]];
    int st = p->tgt->launch(p->kern[gi], bufs);
    if (st)
        return diag_set(d, st, "fused kernel of %u nodes from '%s' failed on target %s",
                        gr->n_nodes, p->g->n[gr->nodes[0]].name, p->tgt->name);
    return ST_OK;
}

int rt_prog_run(struct rt_prog *p, struct diag *d)
{
    int st = ST_OK;
    p->prof_runs += p->prof != NULL;
    for (uint32_t gi = 0; !st && gi < p->plan.n_groups; gi++) {
        const struct cg_group *gr = &p->plan.groups[gi];
        if (p->kern[gi]) {
            st = p->check  ? rt_check_unit(p, gi, NULL, d)
                 : p->prof ? rt_prof_unit(p, gi, NULL, d)
                           : rt_run_kernel(p, gi, d);
            continue;
        }
        for (uint32_t i = 0; !st && i < gr->n_nodes; i++) {
            const struct ir_node *n = &p->g->n[gr->nodes[i]];
            if (p->view[gr->nodes[i]])
                continue; /* its output shares its input's bytes (memplan.c, views) */
            st = p->check  ? rt_check_unit(p, gi, n, d)
                 : p->prof ? rt_prof_unit(p, gi, n, d)
                           : rt_run_node(p, n, d);
        }
    }
    return st;
}

static int feed_inputs(struct rt_prog *p, const struct ir_value *inputs, int n_inputs,
                       struct diag *d)
{
    const struct ir_graph *g = p->g;
    for (uint32_t k = 0; k < g->n_inputs; k++) {
        const struct ir_tensor *t = &g->t[g->inputs[k]];
        if (t->data)
            continue; /* bound as a constant at compile time */
        const struct ir_value *v = NULL;
        for (int i = 0; i < n_inputs; i++)
            if (strcmp(inputs[i].name, t->name) == 0)
                v = &inputs[i];
        if (!v)
            return diag_set(d, ST_ERR_INVALID, "no value given for model input '%s'", t->name);
        if (v->dtype != t->dtype || v->nbytes != rt_tensor_bytes(t))
            return diag_set(d, ST_ERR_SHAPE, "input '%s' does not match the compiled type/shape",
                            t->name);
        int st = rt_prog_write(p, g->inputs[k], v->data, v->nbytes, d);
        if (st)
            return st;
    }
    return ST_OK;
}

static int collect_outputs(struct rt_prog *p, struct ir_value **outputs, int *n_outputs,
                           struct diag *d)
{
    const struct ir_graph *g = p->g;
    struct ir_value *vals = calloc(g->n_outputs + 1, sizeof *vals);
    if (!vals)
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    for (uint32_t k = 0; k < g->n_outputs; k++) {
        const struct ir_tensor *t = &g->t[g->outputs[k]];
        struct ir_value *v = &vals[k];
        v->name = strdup(t->name);
        v->dtype = t->dtype;
        v->rank = t->rank;
        memcpy(v->dims, t->dims, sizeof v->dims);
        v->nbytes = rt_tensor_bytes(t);
        v->data = malloc(v->nbytes ? v->nbytes : 1);
        const void *src = p->buf[g->outputs[k]];
        int st = v->name && v->data && src ? rt_prog_read(p, g->outputs[k], v->data, v->nbytes, d)
                                           : ST_OK;
        if (st || !v->name || !v->data || !src) {
            for (uint32_t j = 0; j <= k; j++)
                ir_value_free(&vals[j]);
            free(vals);
            return st ? st : diag_set(d, src ? ST_ERR_NOMEM : ST_ERR_INVALID,
                                      "output '%s' could not be produced", t->name);
        }
    }
    *outputs = vals;
    *n_outputs = (int)g->n_outputs;
    return ST_OK;
}

int rt_run(const struct ir_graph *g, const struct cg_target *tgt, const struct ir_value *inputs,
           int n_inputs, struct ir_value **outputs, int *n_outputs, struct diag *d)
{
    struct rt_prog *p;
    int st = rt_prog_new(g, tgt, &p, d);
    if (st)
        return st;
    if (!(st = feed_inputs(p, inputs, n_inputs, d)) && !(st = rt_prog_run(p, d)))
        st = collect_outputs(p, outputs, n_outputs, d);
    rt_prog_free(p);
    return st;
}
