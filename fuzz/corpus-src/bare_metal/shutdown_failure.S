# The test finisher's failure exit with a code, after some console output.
# expect: failure 42
    .include "common.inc"
    PUTS message
    EXIT_FAIL 42
message:
    .asciz "failing on purpose\n"
