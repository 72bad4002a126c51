/* For the callback tests: prints the address of a global, then stores a marker there
 * (a memory callback must see the store at that address) and writes a line. */
#include <stdio.h>
#include <unistd.h>

volatile unsigned int marker;

int main(void) {
    printf("%lx\n", (unsigned long)&marker);
    fflush(stdout);
    marker = 0x5eed1234u;
    write(1, "done\n", 5);
    return marker == 0x5eed1234u ? 0 : 1;
}
