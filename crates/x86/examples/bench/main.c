#include <stdio.h>
unsigned long kernel(void);
int main(void) { printf("%lx\n", kernel()); return 0; }
