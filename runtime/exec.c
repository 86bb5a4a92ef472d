/* exec.c — PENDING */
#include "exec.h"
