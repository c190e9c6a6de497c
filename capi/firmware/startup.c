/* Startup of the C firmware on a Cortex-M: the vector table, a reset handler that copies .data from
 * flash, zeroes .bss, turns the FPU on (Cortex-M4F) and calls main, and fault handlers that report
 * and exit with failure. The linker script (link.ld) gives the symbols. */
#include <stdint.h>

#include "semihosting.h"

extern uint32_t _stack_top;
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss;

int main(void);

__attribute__((noreturn)) void Reset_Handler(void) {
    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP)
    /* CPACR: full access to CP10 and CP11 (the FPU), before any floating-point instruction. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    sh_exit(main() == 0);
}

static void fault(const char *name) {
    sh_puts(name);
    sh_puts(": the firmware faulted\n");
    sh_exit(0);
}

void NMI_Handler(void) { fault("NMI"); }
void HardFault_Handler(void) { fault("HardFault"); }
void Default_Handler(void) { fault("unexpected exception"); }

/* Cortex-M exceptions 0 to 15: the initial stack pointer, then the handlers (MemManage, BusFault and
 * UsageFault escalate to HardFault while disabled, as they are after reset). */
__attribute__((section(".vector_table"), used)) static const void *const vectors[16] = {
    &_stack_top,       Reset_Handler,   NMI_Handler,     HardFault_Handler,
    Default_Handler,   Default_Handler, Default_Handler, 0,
    0,                 0,               0,               Default_Handler,
    Default_Handler,   0,               Default_Handler, Default_Handler,
};
