// main() of the dpool_link_check_* executables (CMakeLists.txt): each links every object of one layer with only
// the libraries that layer declares, so that an undefined reference fails the build. They are never run.
int main() { return 0; }
