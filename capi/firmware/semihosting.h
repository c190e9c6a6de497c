/* Arm semihosting (the `bkpt 0xab` calls QEMU answers with -semihosting): text to QEMU's standard
 * output, and the exit status. */
#ifndef SEMIHOSTING_H
#define SEMIHOSTING_H

#include <stddef.h>
#include <stdint.h>

/* Writes a NUL-terminated string to the host's standard output. */
void sh_puts(const char *text);
/* Writes an unsigned number in decimal. */
void sh_put_uint(uint32_t value);
/* Writes a signed number in decimal. */
void sh_put_int(int32_t value);
/* Ends the program: QEMU exits with status 0 when `success`, 1 otherwise. */
__attribute__((noreturn)) void sh_exit(int success);

#endif
