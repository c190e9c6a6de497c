#include "semihosting.h"

#define SYS_OPEN 0x01
#define SYS_WRITE 0x05
#define SYS_EXIT 0x18
/* Reasons of SYS_EXIT: QEMU exits 0 on ApplicationExit, 1 on any other. */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUN_TIME_ERROR 0x20023

static uint32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* The host's standard output: ":tt" opened for writing (mode 4, "w"), as defmt-semihosting does
 * (SYS_WRITE0 would go to QEMU's standard error). */
static uint32_t stdout_handle(void) {
    static uint32_t handle = UINT32_MAX;
    if (handle == UINT32_MAX) {
        static const char name[] = ":tt";
        const uint32_t block[3] = {(uint32_t)(uintptr_t)name, 4, sizeof name - 1};
        handle = semihost(SYS_OPEN, block);
    }
    return handle;
}

void sh_puts(const char *text) {
    size_t len = 0;
    while (text[len] != '\0') len++;
    const uint32_t block[3] = {stdout_handle(), (uint32_t)(uintptr_t)text, (uint32_t)len};
    semihost(SYS_WRITE, block);
}

void sh_put_uint(uint32_t value) {
    char digits[11];
    char *p = digits + sizeof digits - 1;
    *p = '\0';
    do {
        *--p = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    sh_puts(p);
}

void sh_put_int(int32_t value) {
    if (value < 0) {
        sh_puts("-");
        sh_put_uint(0u - (uint32_t)value);
    } else {
        sh_put_uint((uint32_t)value);
    }
}

void sh_exit(int success) {
    for (;;) {
        /* On 32-bit Arm the reason code is passed in r1 directly. */
        semihost(SYS_EXIT, (const void *)(uintptr_t)(success ? ADP_STOPPED_APPLICATION_EXIT
                                                             : ADP_STOPPED_RUN_TIME_ERROR));
    }
}
