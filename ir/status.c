/* status.c — status codes and the caller-owned diagnostic. */
#include <stdio.h>

#include "ir.h"

int diag_set(struct diag *d, enum status st, const char *fmt, ...)
{
    if (!d)
        return st;
    if (d->status != ST_OK) /* keep the first (root-cause) message */
        return st;
    d->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    return st;
}

const char *status_name(enum status st)
{
    switch (st) {
    case ST_OK: return "ok";
    case ST_ERR_IO: return "i/o error";
    case ST_ERR_PARSE: return "parse error";
    case ST_ERR_UNSUPPORTED: return "unsupported";
    case ST_ERR_SHAPE: return "shape error";
    case ST_ERR_NOMEM: return "out of memory";
    case ST_ERR_INVALID: return "invalid model";
    case ST_ERR_DEVICE: return "device error";
    }
    return "unknown status";
}
