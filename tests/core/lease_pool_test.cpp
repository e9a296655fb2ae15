// Tests of the pure core lease_pool: see its header. (Filled in by its own commit.)
#include <catch2/catch.hpp>
