/* train.c — the training driver (see train.h).
 *
 * Random numbers: every draw comes from Philox keyed by (seed, global step,
 * stream, element index) (runtime/philox.h), so a run is reproducible from its
 * seed whatever the thread count. Streams: 1 to 4 are the data sources (data.c),
 * 1000 + k the program's k-th uniform input, and a hash of the state's name
 * (at step 2^32 − 1) its initialisation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec.h"
#include "philox.h"
#include "train.h"

#define STREAM_UNIFORM_BASE 1000u
#define STEP_INIT 0xffffffffull

void rt_store_free(struct rt_store *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->items[i].name);
        free(s->items[i].data);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

struct rt_store_item *rt_store_find(struct rt_store *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0)
            return &s->items[i];
    return NULL;
}

static uint32_t name_stream(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h | 0x80000000u; /* never collides with the small stream ids above */
}

/* the store's item for state s, created and initialised on first use */
static int store_item(struct rt_store *store, const struct ir_tensor *t, const struct dc_state *s,
                      uint64_t seed, int must_exist, struct rt_store_item **out, struct diag *d)
{
    struct rt_store_item *it = rt_store_find(store, s->name);
    size_t nb = (size_t)ir_numel(t) * ir_dtype_size(t->dtype);
    if (it) {
        if (it->nbytes != nb || it->dtype != t->dtype)
            return diag_set(d, ST_ERR_SHAPE, "state '%s' has shape/type different from the program's",
                            s->name);
        *out = it;
        return ST_OK;
    }
    if (must_exist)
        return diag_set(d, ST_ERR_INVALID, "'%s' is missing from the saved components", s->name);
    if (store->n == store->cap) {
        int nc = store->cap ? store->cap * 2 : 32;
        struct rt_store_item *ni = realloc(store->items, (size_t)nc * sizeof *ni);
        if (!ni)
            return diag_set(d, ST_ERR_NOMEM, "out of memory");
        store->items = ni;
        store->cap = nc;
    }
    it = &store->items[store->n];
    memset(it, 0, sizeof *it);
    it->name = strdup(s->name);
    it->data = calloc(1, nb ? nb : 1);
    if (!it->name || !it->data) {
        free(it->name);
        free(it->data);
        return diag_set(d, ST_ERR_NOMEM, "out of memory for state '%s'", s->name);
    }
    store->n++;
    it->dtype = t->dtype;
    it->rank = t->rank;
    memcpy(it->dims, t->dims, sizeof it->dims);
    it->nbytes = nb;
    if (s->init == DC_INIT_NORMAL) {
        int64_t n = ir_numel(t);
        float *f = it->data;
        philox_normal_fill(f, n, seed, STEP_INIT, name_stream(s->name), 0);
        for (int64_t i = 0; i < n; i++)
            f[i] = (float)((double)f[i] * s->std);
    } else if (s->init == DC_INIT_UNIFORM) { /* u in [0, 1) → a·(2u − 1) in [−a, a) */
        int64_t n = ir_numel(t);
        float *f = it->data;
        philox_uniform_fill(f, n, seed, STEP_INIT, name_stream(s->name), 0);
        for (int64_t i = 0; i < n; i++)
            f[i] = (float)(s->std * (2.0 * (double)f[i] - 1.0));
    } else if (s->init == DC_INIT_UNIT)
        philox_uniform_fill(it->data, ir_numel(t), seed, STEP_INIT, name_stream(s->name), 0);
    *out = it;
    return ST_OK;
}

int rt_route_bit(uint64_t seed, uint64_t step, uint32_t stream, uint64_t pos, uint32_t M,
                 uint32_t site)
{
    uint64_t base = pos * (M + 1);
    float u = philox_uniform_at(seed, step, stream, base);
    uint32_t k = 1 + (uint32_t)((double)u * M); /* u < 1, so k <= M */
    float mine = philox_uniform_at(seed, step, stream, base + 1 + site);
    uint32_t rank = 0;
    for (uint32_t j = 0; j < M; j++) {
        float o = philox_uniform_at(seed, step, stream, base + 1 + j);
        rank += o < mine || (o == mine && j < site);
    }
    return rank < k;
}

static void fill_route(float *buf, int64_t n, const struct dc_input *in, uint64_t seed,
                       uint64_t step)
{
    for (int64_t pos = 0; pos < n; pos++)
        buf[pos] = rt_route_bit(seed, step, STREAM_UNIFORM_BASE + in->stream, (uint64_t)pos,
                                in->route_n, in->route_site) ? 1.0f : 0.0f;
}

double rt_scalar_value(const struct dc_prog *p, const struct dc_input *in, int64_t step)
{
    double t = (double)(step + 1); /* optimizer steps count from 1 */
    double ts = (double)step * p->src.per_step + in->sub + 1;
    switch (in->scalar) {
    case DC_SC_LR: return dc_schedule_value(&p->lr, step, p->steps);
    case DC_SC_P: return dc_anneal_p(&p->p, p->steps ? (double)step / (double)p->steps : 0.0);
    case DC_SC_BC1: return 1.0 - pow(p->beta1, t);
    case DC_SC_BC2: return sqrt(1.0 - pow(p->beta2, t));
    case DC_SC_SRC_LR: return dc_schedule_value(&p->src.lr, step, p->steps);
    case DC_SC_SRC_BC1: return 1.0 - pow(p->src.beta1, ts);
    case DC_SC_SRC_BC2: return sqrt(1.0 - pow(p->src.beta2, ts));
    case DC_SC_TOPK: return dc_topk_rank(p, step);
    case DC_SC_COUNT: break;
    }
    return 0;
}

/* one input's values for this step into host memory at buf */
static int feed_host(float *buf, const struct dc_prog *p, const struct dc_input *in,
                     struct ds_source *data, const float *given, const struct rt_train_opts *o,
                     int64_t step, enum ds_split split, struct diag *d)
{
    const struct ir_tensor *t = &p->g->t[in->t];
    uint64_t gstep = (uint64_t)(o->step0 + step);
    int64_t n = ir_numel(t);
    switch (in->kind) {
    case DC_FEED_DATA:
        if (!given)
            return o->fixed_data ? ds_fill(data, buf, t, o->seed, (uint64_t)o->step0, DS_EVAL, d)
                                 : ds_fill(data, buf, t, o->seed, gstep, split, d);
        if (t->dtype != IR_F32)
            return diag_set(d, ST_ERR_UNSUPPORTED, "data input '%s' is %s; given data is "
                            "float32", t->name, ir_dtype_name(t->dtype));
        memcpy(buf, given, (size_t)n * sizeof *buf);
        break;
    case DC_FEED_UNIFORM:
        philox_uniform_fill_par(buf, n, o->seed, gstep, STREAM_UNIFORM_BASE + in->stream, 0);
        break;
    case DC_FEED_SCALAR:
        buf[0] = (float)rt_scalar_value(p, in, step);
        break;
    case DC_FEED_ROUTE:
        fill_route(buf, n, in, o->seed, gstep);
        break;
    }
    return ST_OK;
}

/* A target the host cannot address (a GPU) draws its uniforms itself; the rest
 * (data batches, routing bits, scalars) is made on the host and copied over. */
static int feed(struct rt_prog *rp, const struct dc_prog *p, struct ds_source *data,
                const float *given, const struct rt_train_opts *o, int64_t step,
                enum ds_split split, struct diag *d)
{
    for (int i = 0; i < p->n_in; i++) {
        const struct dc_input *in = &p->in[i];
        float *buf = rt_prog_buf(rp, in->t);
        if (buf) {
            int st = feed_host(buf, p, in, data, given, o, step, split, d);
            if (st)
                return st;
            continue;
        }
        if (in->kind == DC_FEED_UNIFORM) {
            int st = rt_prog_uniform(rp, in->t, o->seed, (uint64_t)(o->step0 + step),
                                     STREAM_UNIFORM_BASE + in->stream, d);
            if (st)
                return st;
            continue;
        }
        size_t nb = rt_tensor_bytes(&p->g->t[in->t]);
        float *stage = malloc(nb ? nb : 1);
        if (!stage)
            return diag_set(d, ST_ERR_NOMEM, "out of memory");
        int st = feed_host(stage, p, in, data, given, o, step, split, d);
        if (!st)
            st = rt_prog_write(rp, in->t, stage, nb, d);
        free(stage);
        if (st)
            return st;
    }
    return ST_OK;
}

static int read_metrics(const struct dc_prog *p, struct rt_prog *rp, double *last, struct diag *d)
{
    for (int i = 0; i < p->n_metric; i++) {
        float v;
        int st = rt_prog_read(rp, p->metric[i].t, &v, sizeof v, d);
        if (st)
            return st;
        last[i] = v;
    }
    return ST_OK;
}

static void write_metrics(const struct dc_prog *p, const struct rt_train_opts *o, int64_t step,
                          double sps, const double *last)
{
    if (!o->metrics)
        return;
    fprintf(o->metrics, "{\"phase\": \"%s\", \"step\": %lld, \"lr\": %.9g", o->phase,
            (long long)step, dc_schedule_value(&p->lr, step, p->steps));
    for (int i = 0; i < p->n_metric; i++)
        fprintf(o->metrics, ", \"%s\": %.9g", p->metric[i].name, last[i]);
    fprintf(o->metrics, ", \"steps_per_s\": %.4g}\n", sps);
    fflush(o->metrics); /* a log people tail: a line per logged step, as it happens */
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress(const struct dc_prog *p, const struct rt_train_opts *o, int64_t step,
                     double t0, const double *last)
{
    double el = now() - t0, sps = (double)(step + 1 - o->from) / (el > 0 ? el : 1e-9);
    double eta = (double)(p->steps - step - 1) / sps;
    double loss = 0;
    for (int i = 0; i < p->n_metric; i++)
        if (p->metric[i].t == p->loss)
            loss = last[i];
    fprintf(stderr, "\r[%s] step %lld/%lld  loss %.4g", o->phase, (long long)(step + 1),
            (long long)p->steps, loss);
    double l0 = 0;
    int nl0 = 0;
    for (int i = 0; i < p->n_metric; i++)
        if (strncmp(p->metric[i].name, "l0/", 3) == 0) {
            l0 += last[i];
            nl0++;
        }
    if (nl0)
        fprintf(stderr, "  L0 %.3g", l0);
    fprintf(stderr, "  %.1f steps/s  ETA %dm%02ds   ", sps, (int)(eta / 60), (int)eta % 60);
    fflush(stderr);
}

/* a non-finite loss stops the phase; early: the value rt_prog_read_start fetched */
static int check_loss(struct rt_prog *rp, const struct dc_prog *p, const struct rt_train_opts *o,
                      int64_t step, int early, struct diag *d)
{
    float loss = 0;
    int st = early ? rt_prog_read_finish(rp, &loss, sizeof loss, d)
                   : rt_prog_read(rp, p->loss, &loss, sizeof loss, d);
    if (st || isfinite(loss))
        return st;
    return diag_set(d, ST_ERR_INVALID, "%s: the loss became %g at step %lld (a too-large "
                    "learning rate, or non-finite weights in the model?)", o->phase, (double)loss,
                    (long long)step);
}

/* copy states store → program before the loop; next → state after each step */
/* items[i]: the store index of state i (indices: the store grows while binding) */
static int bind_states(const struct dc_prog *p, struct rt_prog *rp, struct rt_store *store,
                       uint64_t seed, int must_exist, int *items, struct diag *d)
{
    for (int i = 0; i < p->n_st; i++) {
        struct rt_store_item *it = NULL;
        int st = store_item(store, &p->g->t[p->st[i].t], &p->st[i], seed, must_exist, &it, d);
        if (st)
            return st;
        items[i] = (int)(it - store->items);
        if ((st = rt_prog_write(rp, p->st[i].t, it->data, it->nbytes, d)))
            return st;
    }
    return ST_OK;
}

int rt_train(const struct dc_prog *p, const struct cg_target *tgt, struct rt_store *store,
             struct ds_source *data, const struct rt_train_opts *o, double *last,
             struct diag *d)
{
    struct rt_prog *rp;
    int st = rt_prog_new(p->g, tgt, &rp, d);
    if (st)
        return st;
    int *items = calloc((size_t)p->n_st + 1, sizeof *items);
    if (!items) {
        rt_prog_free(rp);
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    st = bind_states(p, rp, store, o->seed, 0, items, d);
    double t0 = now(), tlast = t0;
    int64_t to = o->to > 0 && o->to < p->steps ? o->to : p->steps;
    /* a device target runs ahead: step s's loss is fetched behind its work and
     * checked once step s + 1 is queued, so no step waits for the one before */
    int ahead = tgt->mem != NULL && p->loss != IR_NONE;
    int64_t pending = -1; /* the step whose loss is in flight */
    for (int64_t step = o->from; !st && step < to; step++) {
        if ((st = feed(rp, p, data, NULL, o, step, DS_TRAIN, d)) || (st = rt_prog_run(rp, d)))
            break;
        if (pending >= 0 && (st = check_loss(rp, p, o, pending, 1, d)))
            break;
        pending = -1;
        if (ahead && !(st = rt_prog_read_start(rp, p->loss, sizeof(float), d)))
            pending = step;
        else if (!ahead && p->loss != IR_NONE && !st)
            st = check_loss(rp, p, o, step, 0, d);
        if (st)
            break;
        int final = step == to - 1;
        /* log on the phase's own cadence, not at segment ends: a resumed run logs the
         * same lines as an uninterrupted one */
        int log = o->log_every > 0 && (step % o->log_every == 0 || step == p->steps - 1);
        int draw = o->progress && (now() - tlast > 0.2 || final);
        if ((log || draw || final) && pending >= 0) { /* this step is read now anyway */
            st = check_loss(rp, p, o, pending, 1, d);
            pending = -1;
        }
        if ((log || draw || final) && (st || (st = read_metrics(p, rp, last, d))))
            break;
        if (log)
            write_metrics(p, o, step, (double)(step + 1 - o->from) / (now() - t0 + 1e-9), last);
        for (int i = 0; !st && i < p->n_st; i++)
            if (p->st[i].next != IR_NONE)
                st = rt_prog_copy(rp, p->st[i].t, p->st[i].next, store->items[items[i]].nbytes, d);
        if (draw) {
            tlast = now();
            progress(p, o, step, t0, last);
        }
    }
    if (!st && pending >= 0)
        st = check_loss(rp, p, o, pending, 1, d);
    if (o->progress)
        fputc('\n', stderr);
    for (int i = 0; !st && i < p->n_st; i++)
        st = rt_prog_read(rp, p->st[i].t, store->items[items[i]].data,
                          store->items[items[i]].nbytes, d);
    free(items);
    rt_prog_free(rp);
    return st;
}

int rt_run_once(const struct dc_prog *p, const struct cg_target *tgt, struct rt_store *store,
                struct ds_source *data, const float *given, uint64_t seed, int64_t step,
                double *metrics, struct rt_prog **out, struct diag *d)
{
    struct rt_prog *rp;
    *out = NULL;
    int st = rt_prog_new(p->g, tgt, &rp, d);
    if (st)
        return st;
    int *items = calloc((size_t)p->n_st + 1, sizeof *items);
    struct rt_train_opts o = {seed, step, "eval", NULL, 0, 0, 0, 0, 0};
    st = items ? bind_states(p, rp, store, seed, 1, items, d) : diag_set(d, ST_ERR_NOMEM, "out of memory");
    free(items);
    if (!st)
        st = feed(rp, p, data, given, &o, 0, DS_EVAL, d);
    if (!st)
        st = rt_prog_run(rp, d);
    if (!st)
        st = read_metrics(p, rp, metrics, d);
    if (st) {
        rt_prog_free(rp);
        return st;
    }
    *out = rp;
    return ST_OK;
}

int rt_store_put(struct rt_store *s, const struct ir_value *v, struct diag *d)
{
    if (rt_store_find(s, v->name))
        return diag_set(d, ST_ERR_INVALID, "'%s' appears twice", v->name);
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 32;
        struct rt_store_item *ni = realloc(s->items, (size_t)nc * sizeof *ni);
        if (!ni)
            return diag_set(d, ST_ERR_NOMEM, "out of memory");
        s->items = ni;
        s->cap = nc;
    }
    struct rt_store_item *it = &s->items[s->n];
    memset(it, 0, sizeof *it);
    it->name = strdup(v->name);
    it->data = malloc(v->nbytes ? v->nbytes : 1);
    if (!it->name || !it->data) {
        free(it->name);
        free(it->data);
        return diag_set(d, ST_ERR_NOMEM, "out of memory");
    }
    memcpy(it->data, v->data, v->nbytes);
    it->dtype = v->dtype;
    it->rank = v->rank;
    memcpy(it->dims, v->dims, sizeof it->dims);
    it->nbytes = v->nbytes;
    s->n++;
    return ST_OK;
}
