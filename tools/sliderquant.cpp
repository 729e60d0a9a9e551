// placeholder main; replaced by the CLI
#include <cstdio>
int main() { std::puts("sliderquant"); return 0; }
