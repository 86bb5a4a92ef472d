/* onnx_depth.c — refuse protobufs nested deeper than ONNX_MAX_DEPTH before
 * protobuf-c sees them. protobuf-c unpacks nested messages recursively with no
 * limit, so a 34 KB file of nested TypeProtos overflows the stack. This walk
 * uses an explicit stack and the generated descriptors to know which
 * length-delimited fields are messages; it checks only the structure that
 * protobuf-c will itself parse (malformed bytes are left for it to reject). */
#include <stdlib.h>

#include "onnx_internal.h"

struct frame {
    const uint8_t *p, *end;
    const ProtobufCMessageDescriptor *desc;
};

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

static const ProtobufCMessageDescriptor *sub_message(const ProtobufCMessageDescriptor *d,
                                                     uint32_t id)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id == id)
            return d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE ? d->fields[i].descriptor : NULL;
    return NULL;
}

/* 0 when fine (or malformed: protobuf-c reports that), -1 when too deep */
int onnx_check_depth(const void *buf, size_t len, const ProtobufCMessageDescriptor *desc)
{
    struct frame st[ONNX_MAX_DEPTH + 1];
    int top = 0;
    st[0] = (struct frame){buf, (const uint8_t *)buf + len, desc};
    while (top >= 0) {
        struct frame *f = &st[top];
        if (f->p >= f->end) {
            top--;
            continue;
        }
        uint64_t key, v;
        if (varint(&f->p, f->end, &key))
            return 0;
        switch (key & 7) {
        case 0: if (varint(&f->p, f->end, &v)) return 0; break;
        case 1: if (f->end - f->p < 8) return 0; f->p += 8; break;
        case 5: if (f->end - f->p < 4) return 0; f->p += 4; break;
        case 2: {
            if (varint(&f->p, f->end, &v) || v > (uint64_t)(f->end - f->p))
                return 0;
            const uint8_t *start = f->p;
            f->p += v;
            const ProtobufCMessageDescriptor *sd = sub_message(f->desc, (uint32_t)(key >> 3));
            if (!sd)
                break;
            if (top == ONNX_MAX_DEPTH)
                return -1;
            st[++top] = (struct frame){start, start + v, sd};
            break;
        }
        default: return 0;
        }
    }
    return 0;
}
