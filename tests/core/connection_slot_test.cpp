// Tests of the pure core connection_slot: see its header. (Filled in by its own commit.)
#include <catch2/catch.hpp>
