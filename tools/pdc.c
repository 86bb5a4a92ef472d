/* pdc.c — PENDING: the command line driver. */
#include <stdio.h>
int main(void) { puts("pdc"); return 0; }
