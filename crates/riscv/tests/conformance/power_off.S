    .include "common.inc"
_start:
    POWER_OFF
